/*
 * peerbook.engine._native: the engine's hot path (placing a valid order, matching it,
 * cancelling a resting order) in C, over the very objects the Python engine keeps.
 *
 * Why this shape: the engine's state stays in its Python classes (Engine, OrderBook,
 * BookSide, PriceLevel, Order, DigestChain), so snapshots, invariants, retiring, queries and
 * the feed read it exactly as before. This module only does, faster, what
 * `Engine._execute`, `matching.match` and `Engine._cancel` do, reading and writing those
 * objects' __slots__ directly at the offsets their member descriptors give.
 *
 * `method(python_apply)` makes the replacement for `Engine.apply`: it applies what it
 * handles and hands anything else, unchanged, to the engine's Python method (a client order
 * id already used, any invalid field, post-only, fill-or-kill, a cancel that would be
 * refused, a market symbol on a cancel). So every refusal sentence, and every rare rule,
 * has one implementation, in Python; the differential tests check that both paths give the
 * same events, orders, books and digests.
 *
 * Numbers: prices and amounts are at most QUANTITY_MAX (10**15), so they and every remaining
 * quantity fit in 64 bits; a cost or a level's total quantity may not, and is summed with
 * Python integers whenever 64 bits would overflow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* ---- what `configure` hands over -------------------------------------------------------- */

static int configured = 0;

static PyTypeObject *EngineType, *PlaceOrderType, *CancelOrderType, *OrderType_, *PriceLevelType;
static PyTypeObject *SideType, *OrderTypeType, *TimeInForceType;
static PyTypeObject *AcceptedType, *TradeType, *RestedType, *ExpiredType, *CancelledType;
static PyObject *BUY, *SELL, *LIMIT, *MARKET, *GTC, *IOC, *FOK;
static PyObject *OPEN, *PARTIALLY_FILLED, *FILLED, *CANCELED, *EXPIRED;
/* Enum members by value, for reading snapshot records (each enum is valued 0, 1, ...). */
static PyObject *SIDES[2], *TYPES[2], *TIFS[3], *STATES[5];
static PyObject *heappush, *heappop, *heapify, *record_accepted, *deque_type;
static long long QUANTITY_MAX, TIMESTAMP_MAX;
static Py_ssize_t CLIENT_ORDER_ID_MAX, BLOCK, HEAP_SLACK, COMPACT_SLACK;

/* Slot offsets. */
static Py_ssize_t e_markets, e_books, e_orders, e_by_client_id, e_owners, e_digest, e_sequence,
    e_trade_count;
static Py_ssize_t b_bids, b_asks;
static Py_ssize_t s_heap, s_levels, s_sign;
static Py_ssize_t l_count, l_orders, l_price, l_quantity;
static Py_ssize_t o_amount, o_client_order_id, o_cost, o_last_trade_timestamp, o_order_id,
    o_owner, o_post_only, o_price, o_remaining, o_side, o_state, o_symbol, o_time_in_force,
    o_timestamp, o_type;
static Py_ssize_t d_chain, d_open;

static PyObject *s_order_id_by_client_id, *s_fold, *s_popleft, *s_append, *s_compact;

/* The offset of one __slots__ member of ``cls``; -1 with an exception if it has none. */
static Py_ssize_t
slot_offset(PyObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL) {
        return -1;
    }
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a __slots__ member", cls, name);
        Py_DECREF(descr);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    Py_ssize_t offset = member->type == T_OBJECT_EX ? member->offset : -1;
    Py_DECREF(descr);
    if (offset < 0) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not an object slot", cls, name);
    }
    return offset;
}

static PyObject *
item(PyObject *names, const char *key)
{
    PyObject *value = PyDict_GetItemString(names, key); /* borrowed */
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "configure: %s is missing", key);
        return NULL;
    }
    Py_INCREF(value); /* kept for the life of the process */
    return value;
}

static int
long_item(PyObject *names, const char *key, long long *out)
{
    PyObject *value = item(names, key);
    if (value == NULL) {
        return -1;
    }
    *out = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

#define TAKE(var, key)                          \
    if (((var) = (void *)item(names, key)) == NULL) \
        return NULL;
#define OFFSET(var, cls, name)                           \
    if (((var) = slot_offset((PyObject *)(cls), name)) < 0) \
        return NULL;

static PyObject *
configure(PyObject *module, PyObject *names)
{
    (void)module;
    if (configured) {
        PyErr_SetString(PyExc_RuntimeError, "peerbook.engine._native is configured once");
        return NULL;
    }
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "configure takes a dict");
        return NULL;
    }
    PyObject *engine, *book, *side, *digest;
    TAKE(engine, "Engine");
    EngineType = (PyTypeObject *)engine;
    Py_INCREF(EngineType); /* kept: apply checks its first argument against it */
    TAKE(book, "OrderBook");
    TAKE(side, "BookSide");
    TAKE(digest, "DigestChain");
    TAKE(PlaceOrderType, "PlaceOrder");
    TAKE(CancelOrderType, "CancelOrder");
    TAKE(OrderType_, "Order");
    TAKE(PriceLevelType, "PriceLevel");
    TAKE(SideType, "Side");
    TAKE(OrderTypeType, "OrderType");
    TAKE(TimeInForceType, "TimeInForce");
    TAKE(AcceptedType, "OrderAccepted");
    TAKE(TradeType, "TradeExecuted");
    TAKE(RestedType, "OrderRested");
    TAKE(ExpiredType, "OrderExpired");
    TAKE(CancelledType, "OrderCancelled");
    TAKE(BUY, "BUY");
    TAKE(SELL, "SELL");
    TAKE(LIMIT, "LIMIT");
    TAKE(MARKET, "MARKET");
    TAKE(GTC, "GTC");
    TAKE(IOC, "IOC");
    TAKE(FOK, "FOK");
    TAKE(OPEN, "OPEN");
    TAKE(PARTIALLY_FILLED, "PARTIALLY_FILLED");
    TAKE(FILLED, "FILLED");
    TAKE(CANCELED, "CANCELED");
    TAKE(EXPIRED, "EXPIRED");
    TAKE(heappush, "heappush");
    TAKE(heappop, "heappop");
    TAKE(heapify, "heapify");
    TAKE(deque_type, "deque");
    TAKE(record_accepted, "record_accepted");
    long long client_order_id_max, block, heap_slack, compact_slack;
    if (long_item(names, "QUANTITY_MAX", &QUANTITY_MAX) < 0 ||
        long_item(names, "TIMESTAMP_MAX", &TIMESTAMP_MAX) < 0 ||
        long_item(names, "CLIENT_ORDER_ID_MAX", &client_order_id_max) < 0 ||
        long_item(names, "BLOCK", &block) < 0 ||
        long_item(names, "HEAP_SLACK", &heap_slack) < 0 ||
        long_item(names, "COMPACT_SLACK", &compact_slack) < 0) {
        return NULL;
    }
    CLIENT_ORDER_ID_MAX = (Py_ssize_t)client_order_id_max;
    BLOCK = (Py_ssize_t)block;
    HEAP_SLACK = (Py_ssize_t)heap_slack;
    COMPACT_SLACK = (Py_ssize_t)compact_slack;

    OFFSET(e_markets, engine, "_markets");
    OFFSET(e_books, engine, "_books");
    OFFSET(e_orders, engine, "_orders");
    OFFSET(e_by_client_id, engine, "_by_client_id");
    OFFSET(e_owners, engine, "_owners");
    OFFSET(e_digest, engine, "_digest");
    OFFSET(e_sequence, engine, "sequence");
    OFFSET(e_trade_count, engine, "trade_count");
    OFFSET(b_bids, book, "bids");
    OFFSET(b_asks, book, "asks");
    OFFSET(s_heap, side, "heap");
    OFFSET(s_levels, side, "levels");
    OFFSET(s_sign, side, "sign");
    OFFSET(l_count, PriceLevelType, "count");
    OFFSET(l_orders, PriceLevelType, "orders");
    OFFSET(l_price, PriceLevelType, "price");
    OFFSET(l_quantity, PriceLevelType, "quantity");
    OFFSET(o_amount, OrderType_, "amount");
    OFFSET(o_client_order_id, OrderType_, "client_order_id");
    OFFSET(o_cost, OrderType_, "cost");
    OFFSET(o_last_trade_timestamp, OrderType_, "last_trade_timestamp");
    OFFSET(o_order_id, OrderType_, "order_id");
    OFFSET(o_owner, OrderType_, "owner");
    OFFSET(o_post_only, OrderType_, "post_only");
    OFFSET(o_price, OrderType_, "price");
    OFFSET(o_remaining, OrderType_, "remaining");
    OFFSET(o_side, OrderType_, "side");
    OFFSET(o_state, OrderType_, "state");
    OFFSET(o_symbol, OrderType_, "symbol");
    OFFSET(o_time_in_force, OrderType_, "time_in_force");
    OFFSET(o_timestamp, OrderType_, "timestamp");
    OFFSET(o_type, OrderType_, "type");
    OFFSET(d_chain, digest, "_chain");
    OFFSET(d_open, digest, "_open");
    Py_DECREF(engine);
    Py_DECREF(book);
    Py_DECREF(side);
    Py_DECREF(digest);
    /* The orders' instances must be plain objects of exactly these slots: they are built here
     * without running __init__, which would otherwise have to be mirrored. */
    if (OrderType_->tp_dictoffset != 0 || OrderType_->tp_weaklistoffset != 0 ||
        PriceLevelType->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "Order and PriceLevel must have __slots__ only");
        return NULL;
    }
    PyObject **tables[] = {SIDES, TYPES, TIFS, STATES};
    PyObject *members[][5] = {
        {BUY, SELL}, {LIMIT, MARKET}, {GTC, IOC, FOK},
        {OPEN, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED},
    };
    long sizes[] = {2, 2, 3, 5};
    for (int t = 0; t < 4; t++) {
        for (long value = 0; value < sizes[t]; value++) {
            if (PyLong_AsLong(members[t][value]) != value) {
                PyErr_SetString(PyExc_TypeError, "an enum's members are not valued 0, 1, ...");
                return NULL;
            }
            tables[t][value] = members[t][value];
        }
    }
    if ((s_order_id_by_client_id = PyUnicode_InternFromString("order_id_by_client_id")) == NULL ||
        (s_fold = PyUnicode_InternFromString("_fold")) == NULL ||
        (s_popleft = PyUnicode_InternFromString("popleft")) == NULL ||
        (s_append = PyUnicode_InternFromString("append")) == NULL ||
        (s_compact = PyUnicode_InternFromString("compact")) == NULL) {
        return NULL;
    }
    configured = 1;
    Py_RETURN_NONE;
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* Replace a slot's value, taking ownership of ``value`` (which may not be NULL). */
static inline void
set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject *old = SLOT(obj, offset);
    SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

static inline void
set_slot_borrowed(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    Py_INCREF(value);
    set_slot(obj, offset, value);
}

/* A slot holding an int that fits in 64 bits (a price, amount, remaining or count). */
static inline int
slot_i64(PyObject *obj, Py_ssize_t offset, long long *out)
{
    PyObject *value = SLOT(obj, offset);
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "an engine slot is unset");
        return -1;
    }
    *out = PyLong_AsLongLong(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static inline int
set_slot_i64(PyObject *obj, Py_ssize_t offset, long long value)
{
    PyObject *number = PyLong_FromLongLong(value);
    if (number == NULL) {
        return -1;
    }
    set_slot(obj, offset, number);
    return 0;
}

/* slot += a * b, exactly: in 64 bits while they suffice, in Python integers beyond. */
static int
slot_add_product(PyObject *obj, Py_ssize_t offset, long long a, long long b)
{
    PyObject *current = SLOT(obj, offset);
    int overflow = 0;
    long long now = PyLong_AsLongLongAndOverflow(current, &overflow);
    if (now == -1 && PyErr_Occurred()) {
        return -1;
    }
    long long product, sum;
    if (!overflow && !__builtin_mul_overflow(a, b, &product) &&
        !__builtin_add_overflow(now, product, &sum)) {
        return set_slot_i64(obj, offset, sum);
    }
    PyObject *pa = PyLong_FromLongLong(a), *pb = PyLong_FromLongLong(b), *big = NULL, *total = NULL;
    if (pa != NULL && pb != NULL && (big = PyNumber_Multiply(pa, pb)) != NULL) {
        total = PyNumber_Add(current, big);
    }
    Py_XDECREF(pa);
    Py_XDECREF(pb);
    Py_XDECREF(big);
    if (total == NULL) {
        return -1;
    }
    set_slot(obj, offset, total);
    return 0;
}

/* A tuple of one of the events' named-tuple classes, built as tuple.__new__ would. */
static PyObject *
event(PyTypeObject *type, Py_ssize_t size)
{
    return type->tp_alloc(type, size);
}

/* An event of ``size`` (at most 12) items, each given as a borrowed reference. The items are
 * held before the tuple is allocated: the allocation may run a garbage collection, whose
 * finalizers could otherwise free a borrowed item (found by a reviewing helper). */
static PyObject *
event_of(PyTypeObject *type, Py_ssize_t size, ...)
{
    PyObject *held[12];
    va_list items;
    va_start(items, size);
    for (Py_ssize_t i = 0; i < size; i++) {
        held[i] = Py_NewRef(va_arg(items, PyObject *));
    }
    va_end(items);
    PyObject *tuple = event(type, size);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (tuple != NULL) {
            PyTuple_SET_ITEM(tuple, i, held[i]);
        }
        else {
            Py_DECREF(held[i]);
        }
    }
    return tuple;
}

#define PUT(tuple, index, value) PyTuple_SET_ITEM((tuple), (index), (value))
#define PUT_BORROWED(tuple, index, value) \
    do {                                  \
        PyObject *v_ = (value);           \
        Py_INCREF(v_);                    \
        PyTuple_SET_ITEM((tuple), (index), v_); \
    } while (0)

static inline int
is_closed(PyObject *state)
{
    return state == FILLED || state == CANCELED || state == EXPIRED;
}

static PyObject *
call_method0(PyObject *obj, PyObject *name)
{
    return PyObject_CallMethodNoArgs(obj, name);
}

/* ---- the digest record ------------------------------------------------------------------- */

/* A growable text buffer, ASCII only: a record with any other character is written by the
 * Python formatter instead, so the two can never disagree on an encoding. */
typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    char inline_space[512];
} Text;

static void
text_init(Text *t)
{
    t->data = t->inline_space;
    t->size = 0;
    t->capacity = sizeof t->inline_space;
}

static void
text_free(Text *t)
{
    if (t->data != t->inline_space) {
        PyMem_Free(t->data);
    }
}

static int
text_grow(Text *t, Py_ssize_t more)
{
    Py_ssize_t capacity = 2 * (t->size + more);
    char *data = PyMem_Malloc((size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(data, t->data, (size_t)t->size);
    text_free(t);
    t->data = data;
    t->capacity = capacity;
    return 0;
}

static inline int
text_reserve(Text *t, Py_ssize_t more)
{
    return t->size + more <= t->capacity ? 0 : text_grow(t, more);
}

static inline int
text_raw(Text *t, const char *s, Py_ssize_t n)
{
    if (text_reserve(t, n) < 0) {
        return -1;
    }
    memcpy(t->data + t->size, s, (size_t)n);
    t->size += n;
    return 0;
}

static inline int
text_char(Text *t, char c)
{
    if (text_reserve(t, 1) < 0) {
        return -1;
    }
    t->data[t->size++] = c;
    return 0;
}

/* A 64-bit integer in decimal, written by hand: snprintf cost a third of an order's
 * instructions (callgrind). */
static inline int
text_i64(Text *t, long long value)
{
    if (text_reserve(t, 20) < 0) {
        return -1;
    }
    char digits[20];
    int n = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value
                                             : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    char *out = t->data + t->size;
    if (value < 0) {
        *out++ = '-';
    }
    while (n) {
        *out++ = digits[--n];
    }
    t->size = out - t->data;
    return 0;
}

/* An int of any size (a cost may pass 64 bits), in decimal; None as "None" (the %s of a
 * missing market price). */
static int
text_int(Text *t, PyObject *value)
{
    if (value == Py_None) {
        return text_raw(t, "None", 4);
    }
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (small == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow) {
        return text_i64(t, small);
    }
    PyObject *str = PyObject_Str(value);
    if (str == NULL) {
        return -1;
    }
    int result = text_raw(t, (const char *)PyUnicode_1BYTE_DATA(str), PyUnicode_GET_LENGTH(str));
    Py_DECREF(str);
    return result;
}

/* 1 if ``s`` is written (ASCII), 0 if it is not ASCII, -1 on error. */
static int
text_ascii(Text *t, PyObject *s)
{
    if (!PyUnicode_IS_ASCII(s)) {
        return 0;
    }
    return text_raw(t, (const char *)PyUnicode_1BYTE_DATA(s), PyUnicode_GET_LENGTH(s)) < 0 ? -1 : 1;
}

/* ``len:text``, self-delimiting, or ``~`` for None (digest._text). */
static int
text_delimited(Text *t, PyObject *s)
{
    if (s == Py_None) {
        return text_char(t, '~') < 0 ? -1 : 1;
    }
    if (!PyUnicode_IS_ASCII(s)) {
        return 0;
    }
    if (text_i64(t, PyUnicode_GET_LENGTH(s)) < 0 || text_char(t, ':') < 0) {
        return -1;
    }
    return text_ascii(t, s);
}

static PyObject *
text_str(Text *t)
{
    PyObject *str = PyUnicode_New(t->size, 127);
    if (str != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(str), t->data, (size_t)t->size);
    }
    return str;
}

/* Commit the record to the engine's DigestChain (DigestChain.add). Steals ``record``. */
static int
digest_add(PyObject *engine, PyObject *record)
{
    if (record == NULL) {
        return -1;
    }
    PyObject *digest = SLOT(engine, e_digest);
    PyObject *open = SLOT(digest, d_open);
    if (open == NULL || !PyList_Check(open)) {
        Py_DECREF(record);
        PyErr_SetString(PyExc_SystemError, "the digest chain has no open block");
        return -1;
    }
    int failed = PyList_Append(open, record);
    Py_DECREF(record);
    if (failed) {
        return -1;
    }
    if (PyList_GET_SIZE(open) >= BLOCK) {
        Py_INCREF(digest); /* _fold is Python: hold what it might let go */
        PyObject *chain = call_method0(digest, s_fold);
        if (chain != NULL) {
            set_slot(digest, d_chain, chain);
            open = SLOT(digest, d_open);
            failed = PyList_SetSlice(open, 0, PyList_GET_SIZE(open), NULL);
        }
        Py_DECREF(digest);
        if (chain == NULL || failed) {
            return -1;
        }
    }
    return 0;
}

/* digest.record_accepted, for a valid placed order; the Python formatter when a string in it
 * is not ASCII. */
static PyObject *
accepted_record(long long sequence, PyObject *command, PyObject *order, PyObject *trades)
{
    PyObject *owner = PyTuple_GET_ITEM(command, 0), *symbol = PyTuple_GET_ITEM(command, 2);
    PyObject *client_order_id = PyTuple_GET_ITEM(command, 9);
    Text t;
    text_init(&t);
    int ok = 1; /* 1 written, 0 not ASCII, -1 error */
#define W(expr)                  \
    if (ok == 1 && (expr) < 0) { \
        ok = -1;                 \
    }
#define WS(expr)        \
    if (ok == 1) {      \
        ok = (expr);    \
    }
    W(text_i64(&t, sequence));
    W(text_raw(&t, "|P|", 3));
    WS(text_delimited(&t, owner));
    W(text_char(&t, '|'));
    W(text_int(&t, PyTuple_GET_ITEM(command, 1)));
    W(text_char(&t, '|'));
    WS(text_ascii(&t, symbol));
    W(text_char(&t, '|'));
    W(text_int(&t, PyTuple_GET_ITEM(command, 3)));
    W(text_char(&t, '|'));
    W(text_int(&t, PyTuple_GET_ITEM(command, 4)));
    W(text_char(&t, '|'));
    W(text_int(&t, PyTuple_GET_ITEM(command, 5)));
    W(text_char(&t, '|'));
    W(text_int(&t, PyTuple_GET_ITEM(command, 6)));
    W(text_char(&t, '|'));
    W(text_int(&t, PyTuple_GET_ITEM(command, 7)));
    W(text_char(&t, '|'));
    W(text_char(&t, PyTuple_GET_ITEM(command, 8) == Py_True ? '1' : '0'));
    W(text_char(&t, '|'));
    WS(text_delimited(&t, client_order_id));
    W(text_char(&t, '|'));
    Py_ssize_t count = PyList_GET_SIZE(trades);
    for (Py_ssize_t i = 0; i < count && ok == 1; i++) {
        PyObject *trade = PyList_GET_ITEM(trades, i);
        if (i) {
            W(text_char(&t, ','));
        }
        W(text_int(&t, PyTuple_GET_ITEM(trade, 7)));
        W(text_char(&t, 'x'));
        W(text_int(&t, PyTuple_GET_ITEM(trade, 4)));
    }
    W(text_char(&t, '|'));
    W(text_int(&t, SLOT(order, o_state)));
    W(text_char(&t, '|'));
    W(text_int(&t, SLOT(order, o_remaining)));
    W(text_char(&t, '|'));
    W(text_int(&t, SLOT(order, o_cost)));
    W(text_char(&t, '\n'));
#undef W
#undef WS
    PyObject *record = NULL;
    if (ok == 1) {
        record = text_str(&t);
    }
    else if (ok == 0) {
        PyObject *number = PyLong_FromLongLong(sequence);
        if (number != NULL) {
            record = PyObject_CallFunctionObjArgs(record_accepted, number, command, order,
                                                  trades, NULL);
            Py_DECREF(number);
        }
    }
    text_free(&t);
    return record;
}

/* ---- the book ---------------------------------------------------------------------------- */

static int
heap_call(PyObject *function, PyObject *heap, PyObject *key)
{
    PyObject *result = key == NULL ? PyObject_CallOneArg(function, heap)
                                   : PyObject_CallFunctionObjArgs(function, heap, key, NULL);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* BookSide.rest: queue ``order`` at ``price`` behind the orders already there. */
static int
rest(PyObject *side, PyObject *order, PyObject *price_obj, long long price, long long remaining)
{
    PyObject *levels = SLOT(side, s_levels);
    PyObject *level = PyDict_GetItemWithError(levels, price_obj); /* borrowed */
    if (level == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        /* PriceLevel(price), built without its __init__ frame */
        PyObject *queue = PyObject_CallNoArgs(deque_type);
        if (queue == NULL) {
            return -1;
        }
        PyObject *fresh = PriceLevelType->tp_alloc(PriceLevelType, 0);
        if (fresh == NULL) {
            Py_DECREF(queue);
            return -1;
        }
        set_slot_borrowed(fresh, l_price, price_obj);
        set_slot(fresh, l_orders, queue);
        set_slot_i64(fresh, l_count, 0);
        set_slot_i64(fresh, l_quantity, 0);
        if (SLOT(fresh, l_count) == NULL || SLOT(fresh, l_quantity) == NULL ||
            PyDict_SetItem(levels, price_obj, fresh) < 0) {
            Py_DECREF(fresh);
            return -1;
        }
        level = fresh;
        Py_DECREF(fresh); /* the dict holds it */
        PyObject *heap = SLOT(side, s_heap);
        long long sign;
        if (heap == NULL || slot_i64(side, s_sign, &sign) < 0) {
            return -1;
        }
        if (PyList_GET_SIZE(heap) > 2 * PyDict_GET_SIZE(levels) + HEAP_SLACK) {
            PyObject *keys = PyList_New(0);
            if (keys == NULL) {
                return -1;
            }
            PyObject *key_price;
            Py_ssize_t position = 0;
            while (PyDict_Next(levels, &position, &key_price, NULL)) {
                long long p = PyLong_AsLongLong(key_price);
                PyObject *key = p == -1 && PyErr_Occurred() ? NULL : PyLong_FromLongLong(sign * p);
                if (key == NULL || PyList_Append(keys, key) < 0) {
                    Py_XDECREF(key);
                    Py_DECREF(keys);
                    return -1;
                }
                Py_DECREF(key);
            }
            set_slot(side, s_heap, keys);
            if (heap_call(heapify, keys, NULL) < 0) {
                return -1;
            }
        }
        else {
            PyObject *key = PyLong_FromLongLong(sign * price);
            int failed = key == NULL || heap_call(heappush, heap, key) < 0;
            Py_XDECREF(key);
            if (failed) {
                return -1;
            }
        }
    }
    PyObject *appended = PyObject_CallMethodOneArg(SLOT(level, l_orders), s_append, order);
    if (appended == NULL) {
        return -1;
    }
    Py_DECREF(appended);
    long long count;
    if (slot_i64(level, l_count, &count) < 0 || set_slot_i64(level, l_count, count + 1) < 0) {
        return -1;
    }
    return slot_add_product(level, l_quantity, remaining, 1);
}

/* matching.match: the taker takes liquidity from ``makers``; returns the trades (a list). */
static PyObject *
match(PyObject *taker, PyObject *makers, int limited, long long limit_key, long long sequence,
      long long first_trade_id, long long *remaining_out)
{
    PyObject *trades = PyList_New(0);
    if (trades == NULL) {
        return NULL;
    }
    PyObject *heap = SLOT(makers, s_heap), *levels = SLOT(makers, s_levels);
    long long sign;
    if (heap == NULL || levels == NULL || slot_i64(makers, s_sign, &sign) < 0) {
        PyErr_SetString(PyExc_SystemError, "a book side lacks a field");
        Py_DECREF(trades);
        return NULL;
    }
    long long remaining = *remaining_out, trade_id = first_trade_id;
    PyObject *timestamp = SLOT(taker, o_timestamp);
    PyObject *taker_id = SLOT(taker, o_order_id), *taker_side = SLOT(taker, o_side);
    PyObject *symbol = SLOT(taker, o_symbol);
    long long cost = 0;
    int cost_overflow = 0;
    PyObject *big_cost = NULL; /* the taker's cost in Python ints, once 64 bits overflow */

    while (remaining && PyList_GET_SIZE(heap)) {
        long long key = PyLong_AsLongLong(PyList_GET_ITEM(heap, 0));
        if (key == -1 && PyErr_Occurred()) {
            goto error;
        }
        long long price = sign * key;
        PyObject *price_obj = PyLong_FromLongLong(price);
        if (price_obj == NULL) {
            goto error;
        }
        PyObject *level = PyDict_GetItemWithError(levels, price_obj); /* borrowed */
        if (level == NULL) {
            Py_DECREF(price_obj);
            if (PyErr_Occurred() || heap_call(heappop, heap, NULL) < 0) {
                goto error;
            }
            continue;
        }
        if (limited && key > limit_key) {
            Py_DECREF(price_obj);
            break;
        }
        Py_INCREF(level);
        PyObject *queue = SLOT(level, l_orders);
        long long traded = 0, count;
        if (slot_i64(level, l_count, &count) < 0) {
            goto level_error;
        }
        while (remaining) {
            Py_ssize_t queued = PySequence_Size(queue);
            if (queued <= 0) {
                if (queued == 0) {
                    PyErr_SetString(PyExc_SystemError, "a level counts orders it does not hold");
                }
                goto level_error;
            }
            PyObject *maker = PySequence_GetItem(queue, 0);
            if (maker == NULL) {
                goto level_error;
            }
            if (SLOT(maker, o_state) == NULL || SLOT(maker, o_order_id) == NULL) {
                Py_DECREF(maker);
                PyErr_SetString(PyExc_SystemError, "an order in the book lacks a field");
                goto level_error;
            }
            if (is_closed(SLOT(maker, o_state))) {
                Py_DECREF(maker);
                PyObject *dropped = call_method0(queue, s_popleft);
                if (dropped == NULL) {
                    goto level_error;
                }
                Py_DECREF(dropped);
                continue;
            }
            long long maker_remaining;
            if (slot_i64(maker, o_remaining, &maker_remaining) < 0) {
                Py_DECREF(maker);
                goto level_error;
            }
            long long quantity = remaining < maker_remaining ? remaining : maker_remaining;
            remaining -= quantity;
            traded += quantity;
            maker_remaining -= quantity;
            if (set_slot_i64(maker, o_remaining, maker_remaining) < 0 ||
                slot_add_product(maker, o_cost, price, quantity) < 0) {
                Py_DECREF(maker);
                goto level_error;
            }
            set_slot_borrowed(maker, o_last_trade_timestamp, timestamp);
            PyObject *trade = event(TradeType, 11);
            if (trade == NULL) {
                Py_DECREF(maker);
                goto level_error;
            }
            PUT(trade, 0, PyLong_FromLongLong(sequence));
            PUT(trade, 1, PyLong_FromLongLong(trade_id));
            PUT_BORROWED(trade, 2, symbol);
            PUT_BORROWED(trade, 3, price_obj);
            PUT(trade, 4, PyLong_FromLongLong(quantity));
            PUT_BORROWED(trade, 5, taker_side);
            PUT_BORROWED(trade, 6, taker_id);
            PUT_BORROWED(trade, 7, SLOT(maker, o_order_id));
            PUT(trade, 8, PyLong_FromLongLong(remaining));
            PUT(trade, 9, PyLong_FromLongLong(maker_remaining));
            PUT_BORROWED(trade, 10, timestamp);
            if (!PyTuple_GET_ITEM(trade, 0) || !PyTuple_GET_ITEM(trade, 1) ||
                !PyTuple_GET_ITEM(trade, 4) || !PyTuple_GET_ITEM(trade, 8) ||
                !PyTuple_GET_ITEM(trade, 9) || PyList_Append(trades, trade) < 0) {
                Py_DECREF(trade);
                Py_DECREF(maker);
                goto level_error;
            }
            Py_DECREF(trade);
            trade_id++;
            if (maker_remaining) {
                set_slot_borrowed(maker, o_state, PARTIALLY_FILLED);
                Py_DECREF(maker);
            }
            else {
                set_slot_borrowed(maker, o_state, FILLED);
                Py_DECREF(maker);
                PyObject *dropped = call_method0(queue, s_popleft);
                if (dropped == NULL) {
                    goto level_error;
                }
                Py_DECREF(dropped);
                count--;
                if (!count) {
                    break;
                }
            }
        }
        if (set_slot_i64(level, l_count, count) < 0 ||
            slot_add_product(level, l_quantity, traded, -1) < 0) {
            goto level_error;
        }
        long long spent;
        if (!cost_overflow && !__builtin_mul_overflow(price, traded, &spent) &&
            !__builtin_add_overflow(cost, spent, &spent)) {
            cost = spent;
        }
        else {
            /* 64 bits no longer hold the taker's cost: carry on in Python integers */
            if (!cost_overflow) {
                big_cost = PyLong_FromLongLong(cost);
                cost_overflow = 1;
                if (big_cost == NULL) {
                    goto level_error;
                }
            }
            PyObject *pp = PyLong_FromLongLong(price), *pt = PyLong_FromLongLong(traded);
            PyObject *product = pp && pt ? PyNumber_Multiply(pp, pt) : NULL;
            PyObject *sum = product ? PyNumber_Add(big_cost, product) : NULL;
            Py_XDECREF(pp);
            Py_XDECREF(pt);
            Py_XDECREF(product);
            if (sum == NULL) {
                goto level_error;
            }
            Py_SETREF(big_cost, sum);
        }
        if (!count) {
            if (PyDict_DelItem(levels, price_obj) < 0 || heap_call(heappop, heap, NULL) < 0) {
                goto level_error;
            }
        }
        Py_DECREF(level);
        Py_DECREF(price_obj);
        continue;
    level_error:
        Py_DECREF(level);
        Py_DECREF(price_obj);
        goto error;
    }
    if (PyList_GET_SIZE(trades)) {
        if (set_slot_i64(taker, o_remaining, remaining) < 0) {
            goto error;
        }
        if (cost_overflow) {
            PyObject *total = PyNumber_Add(SLOT(taker, o_cost), big_cost);
            if (total == NULL) {
                goto error;
            }
            set_slot(taker, o_cost, total);
        }
        else if (slot_add_product(taker, o_cost, cost, 1) < 0) {
            goto error;
        }
        set_slot_borrowed(taker, o_last_trade_timestamp, timestamp);
        set_slot_borrowed(taker, o_state, remaining ? PARTIALLY_FILLED : FILLED);
    }
    Py_XDECREF(big_cost);
    *remaining_out = remaining;
    return trades;
error:
    Py_XDECREF(big_cost);
    Py_DECREF(trades);
    return NULL;
}

/* ---- placing ----------------------------------------------------------------------------- */

static inline int
in_range(PyObject *value, long long low, long long high, long long *out)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || v < low || v > high) {
        return 0;
    }
    *out = v;
    return 1;
}

/* Whether the Python engine would accept this command with no check that reads the book
 * (engine._check_place, minus post-only, which the Python engine handles). */
static int
placeable(PyObject *command, long long *amount, long long *price, int *has_price)
{
    PyObject *owner = PyTuple_GET_ITEM(command, 0), *timestamp = PyTuple_GET_ITEM(command, 1);
    PyObject *side = PyTuple_GET_ITEM(command, 3), *type = PyTuple_GET_ITEM(command, 4);
    PyObject *amount_obj = PyTuple_GET_ITEM(command, 5), *price_obj = PyTuple_GET_ITEM(command, 6);
    PyObject *time_in_force = PyTuple_GET_ITEM(command, 7);
    PyObject *post_only = PyTuple_GET_ITEM(command, 8);
    PyObject *client_order_id = PyTuple_GET_ITEM(command, 9);
    long long ignored;
    if (!PyUnicode_CheckExact(owner) || PyUnicode_GET_LENGTH(owner) == 0 ||
        !in_range(timestamp, 0, TIMESTAMP_MAX, &ignored)) {
        return 0;
    }
    if (client_order_id != Py_None &&
        (!PyUnicode_CheckExact(client_order_id) || PyUnicode_GET_LENGTH(client_order_id) == 0 ||
         PyUnicode_GET_LENGTH(client_order_id) > CLIENT_ORDER_ID_MAX)) {
        return 0;
    }
    if (Py_TYPE(side) != SideType || Py_TYPE(type) != OrderTypeType ||
        Py_TYPE(time_in_force) != TimeInForceType || post_only != Py_False ||
        time_in_force == FOK || !in_range(amount_obj, 1, QUANTITY_MAX, amount)) {
        return 0;
    }
    if (type == LIMIT) {
        *has_price = 1;
        return in_range(price_obj, 1, QUANTITY_MAX, price);
    }
    *has_price = 0;
    return type == MARKET && price_obj == Py_None;
}

/* A new Order, as Order(...) builds it, without running its __init__. */
static PyObject *
new_order(PyObject *command, PyObject *sequence, PyObject *owner)
{
    PyObject *order = OrderType_->tp_alloc(OrderType_, 0);
    if (order == NULL) {
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    set_slot_borrowed(order, o_order_id, sequence);
    set_slot_borrowed(order, o_owner, owner);
    set_slot_borrowed(order, o_client_order_id, PyTuple_GET_ITEM(command, 9));
    set_slot_borrowed(order, o_symbol, PyTuple_GET_ITEM(command, 2));
    set_slot_borrowed(order, o_side, PyTuple_GET_ITEM(command, 3));
    set_slot_borrowed(order, o_type, PyTuple_GET_ITEM(command, 4));
    set_slot_borrowed(order, o_time_in_force, PyTuple_GET_ITEM(command, 7));
    set_slot_borrowed(order, o_post_only, PyTuple_GET_ITEM(command, 8));
    set_slot_borrowed(order, o_price, PyTuple_GET_ITEM(command, 6));
    set_slot_borrowed(order, o_amount, PyTuple_GET_ITEM(command, 5));
    set_slot_borrowed(order, o_remaining, PyTuple_GET_ITEM(command, 5));
    set_slot(order, o_cost, zero); /* small ints are immortal-enough: never NULL */
    set_slot_borrowed(order, o_timestamp, PyTuple_GET_ITEM(command, 1));
    set_slot_borrowed(order, o_last_trade_timestamp, Py_None);
    set_slot_borrowed(order, o_state, OPEN);
    /* An order holds only strings, integers, None and enum members, so it can never be part
     * of a reference cycle: the cyclic collector need not track it. Untracked, the orders
     * kept on record stop costing every collection a visit each (a tenth of an order's
     * instructions at 20,000 orders, more as they accumulate). */
    PyObject_GC_UnTrack(order);
    return order;
}

static PyObject *
place(PyObject *engine, PyObject *command)
{
    PyObject *owner = PyTuple_GET_ITEM(command, 0), *symbol = PyTuple_GET_ITEM(command, 2);
    PyObject *client_order_id = PyTuple_GET_ITEM(command, 9);
    long long amount, price = 0;
    int has_price;
    if (!PyUnicode_CheckExact(symbol) || !placeable(command, &amount, &price, &has_price)) {
        Py_RETURN_NONE;
    }
    PyObject *market = PyDict_GetItemWithError(SLOT(engine, e_markets), symbol);
    if (market == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (client_order_id != Py_None) {
        /* a repeat returns the original order: the Python engine says so */
        PyObject *original = PyObject_CallMethodObjArgs(engine, s_order_id_by_client_id, owner,
                                                        client_order_id, NULL);
        if (original == NULL) {
            return NULL;
        }
        Py_DECREF(original);
        if (original != Py_None) {
            Py_RETURN_NONE;
        }
    }
    /* From here on the command is applied: nothing below declines it. */
    PyObject *book = PyDict_GetItemWithError(SLOT(engine, e_books), symbol);
    if (book == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_SystemError, "market %R has no book", symbol);
        }
        return NULL;
    }
    PyObject *side = PyTuple_GET_ITEM(command, 3);
    /* held strongly: the calls below into Python (a store of client order ids, heapq) must
     * not be able to free them under us */
    PyObject *makers = SLOT(book, side == BUY ? b_asks : b_bids);
    PyObject *resters = SLOT(book, side == BUY ? b_bids : b_asks);
    long long sign, sequence_value, trade_count;
    if (makers == NULL || resters == NULL || slot_i64(makers, s_sign, &sign) < 0 ||
        slot_i64(engine, e_sequence, &sequence_value) < 0 ||
        slot_i64(engine, e_trade_count, &trade_count) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_SystemError, "a book lacks a side");
        }
        return NULL;
    }
    sequence_value++;
    PyObject *sequence = PyLong_FromLongLong(sequence_value);
    if (sequence == NULL) {
        return NULL;
    }
    Py_INCREF(makers);
    Py_INCREF(resters);
    set_slot_borrowed(engine, e_sequence, sequence);
    PyObject *interned = PyDict_SetDefault(SLOT(engine, e_owners), owner, owner); /* borrowed */
    PyObject *order = interned == NULL ? NULL : new_order(command, sequence, interned);
    PyObject *trades = NULL, *events = NULL, *accepted = NULL;
    if (order == NULL || PyDict_SetItem(SLOT(engine, e_orders), sequence, order) < 0) {
        goto done;
    }
    if (client_order_id != Py_None) {
        PyObject *key = PyTuple_Pack(2, interned, client_order_id);
        int failed = key == NULL || PyObject_SetItem(SLOT(engine, e_by_client_id), key, sequence);
        Py_XDECREF(key);
        if (failed) {
            goto done;
        }
    }
    /* OrderAccepted(sequence, order_id, owner, client_order_id, symbol, side, type,
     * time_in_force, post_only, price, amount, timestamp) */
    accepted = event_of(AcceptedType, 12, sequence, sequence, interned, client_order_id, symbol,
                        side, PyTuple_GET_ITEM(command, 4), PyTuple_GET_ITEM(command, 7),
                        PyTuple_GET_ITEM(command, 8), PyTuple_GET_ITEM(command, 6),
                        PyTuple_GET_ITEM(command, 5), PyTuple_GET_ITEM(command, 1));
    if (accepted == NULL) {
        goto done;
    }

    long long remaining = amount;
    if (PyDict_GET_SIZE(SLOT(makers, s_levels))) {
        trades = match(order, makers, has_price, sign * price, sequence_value, trade_count + 1,
                       &remaining);
    }
    else {
        trades = PyList_New(0);
    }
    if (trades == NULL) {
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(trades);
    if (n && set_slot_i64(engine, e_trade_count, trade_count + n) < 0) {
        goto done;
    }
    PyObject *last = NULL;
    if (remaining) {
        if (has_price && PyTuple_GET_ITEM(command, 7) == GTC) {
            if (rest(resters, order, PyTuple_GET_ITEM(command, 6), price, remaining) < 0) {
                goto done;
            }
            /* OrderRested(sequence, order_id, symbol, side, price, quantity_remaining) */
            last = event_of(RestedType, 6, sequence, sequence, symbol, side,
                            PyTuple_GET_ITEM(command, 6), SLOT(order, o_remaining));
            if (last == NULL) {
                goto done;
            }
        }
        else {
            set_slot_borrowed(order, o_state, EXPIRED);
            /* OrderExpired(sequence, order_id, quantity_remaining) */
            last = event_of(ExpiredType, 3, sequence, sequence, SLOT(order, o_remaining));
            if (last == NULL) {
                goto done;
            }
        }
    }
    if (digest_add(engine, accepted_record(sequence_value, command, order, trades)) < 0) {
        Py_XDECREF(last);
        goto done;
    }
    events = PyTuple_New(1 + n + (last != NULL));
    if (events == NULL) {
        Py_XDECREF(last);
        goto done;
    }
    PUT_BORROWED(events, 0, accepted);
    for (Py_ssize_t i = 0; i < n; i++) {
        PUT_BORROWED(events, 1 + i, PyList_GET_ITEM(trades, i));
    }
    if (last != NULL) {
        PUT(events, 1 + n, last);
    }
done:
    Py_DECREF(makers);
    Py_DECREF(resters);
    Py_DECREF(sequence);
    Py_XDECREF(order);
    Py_XDECREF(trades);
    Py_XDECREF(accepted);
    return events;
}

/* ---- cancelling -------------------------------------------------------------------------- */

static PyObject *
cancel(PyObject *engine, PyObject *command)
{
    PyObject *owner = PyTuple_GET_ITEM(command, 0), *order_id = PyTuple_GET_ITEM(command, 2);
    if (!PyUnicode_CheckExact(owner) || !PyLong_CheckExact(order_id) ||
        PyTuple_GET_ITEM(command, 4) != Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *order = PyDict_GetItemWithError(SLOT(engine, e_orders), order_id); /* borrowed */
    if (order == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *state = SLOT(order, o_state), *price_obj = SLOT(order, o_price);
    if ((state != OPEN && state != PARTIALLY_FILLED) || price_obj == NULL ||
        !PyLong_CheckExact(price_obj) || SLOT(order, o_owner) == NULL ||
        SLOT(order, o_symbol) == NULL || SLOT(order, o_side) == NULL ||
        SLOT(order, o_remaining) == NULL || SLOT(order, o_order_id) == NULL) {
        Py_RETURN_NONE; /* not open, or a record missing a field: Python says which */
    }
    int same = PyObject_RichCompareBool(SLOT(order, o_owner), owner, Py_EQ);
    if (same <= 0) {
        if (same < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *book = PyDict_GetItemWithError(SLOT(engine, e_books), SLOT(order, o_symbol));
    PyObject *side = book == NULL ? NULL : SLOT(book, SLOT(order, o_side) == BUY ? b_bids : b_asks);
    PyObject *levels = side == NULL ? NULL : SLOT(side, s_levels);
    PyObject *level = levels == NULL ? NULL : PyDict_GetItemWithError(levels, price_obj);
    if (level == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_SystemError, "a resting order's level is missing");
        }
        return NULL;
    }
    long long sequence_value, remaining, count;
    if (slot_i64(engine, e_sequence, &sequence_value) < 0 ||
        slot_i64(order, o_remaining, &remaining) < 0 || slot_i64(level, l_count, &count) < 0) {
        return NULL;
    }
    /* Engine._cancel and BookSide.withdraw / PriceLevel.forget. Held strongly from here:
     * compacting the level runs Python code. */
    Py_INCREF(order);
    Py_INCREF(levels);
    Py_INCREF(level);
    Py_INCREF(price_obj);
    PyObject *events = NULL;
    sequence_value++;
    if (set_slot_i64(engine, e_sequence, sequence_value) < 0) {
        goto done;
    }
    set_slot_borrowed(order, o_state, CANCELED);
    count--;
    if (set_slot_i64(level, l_count, count) < 0 ||
        slot_add_product(level, l_quantity, remaining, -1) < 0) {
        goto done;
    }
    Py_ssize_t queued = PySequence_Size(SLOT(level, l_orders));
    if (queued < 0) {
        goto done;
    }
    if (queued > 2 * count + COMPACT_SLACK) {
        PyObject *compacted = call_method0(level, s_compact);
        if (compacted == NULL) {
            goto done;
        }
        Py_DECREF(compacted);
    }
    if (count == 0 && PyDict_DelItem(levels, price_obj) < 0) {
        goto done;
    }
    Text t;
    text_init(&t);
    PyObject *record = NULL;
    if (text_i64(&t, sequence_value) == 0 && text_raw(&t, "|C|", 3) == 0 &&
        text_int(&t, SLOT(order, o_order_id)) == 0 && text_char(&t, '|') == 0 &&
        text_i64(&t, remaining) == 0 && text_char(&t, '\n') == 0) {
        record = text_str(&t);
    }
    text_free(&t);
    if (digest_add(engine, record) < 0) {
        goto done;
    }
    /* OrderCancelled(sequence, order_id, quantity_remaining) */
    PyObject *cancelled = event_of(CancelledType, 3, SLOT(engine, e_sequence),
                                   SLOT(order, o_order_id), SLOT(order, o_remaining));
    if (cancelled == NULL) {
        goto done;
    }
    events = PyTuple_Pack(1, cancelled);
    Py_DECREF(cancelled);
done:
    Py_DECREF(order);
    Py_DECREF(levels);
    Py_DECREF(level);
    Py_DECREF(price_obj);
    return events;
}

/* ---- the module -------------------------------------------------------------------------- */

/* Engine.apply: ``python_apply`` is the engine's own method, called for what this module
 * does not handle. */
/* Whether ``engine`` is an Engine whose slots this module reads are all set. */
static int
engine_complete(PyObject *engine)
{
    return PyObject_TypeCheck(engine, EngineType) && SLOT(engine, e_markets) != NULL &&
           SLOT(engine, e_books) != NULL && SLOT(engine, e_orders) != NULL &&
           SLOT(engine, e_by_client_id) != NULL && SLOT(engine, e_owners) != NULL &&
           SLOT(engine, e_digest) != NULL && SLOT(engine, e_sequence) != NULL &&
           SLOT(engine, e_trade_count) != NULL && PyDict_CheckExact(SLOT(engine, e_markets)) &&
           PyDict_CheckExact(SLOT(engine, e_books)) && PyDict_CheckExact(SLOT(engine, e_orders)) &&
           PyDict_CheckExact(SLOT(engine, e_owners));
}

/* Engine.apply: ``python_apply`` is the engine's own method, called for what this module
 * does not handle (and for any call not of the form engine.apply(command)). */
static PyObject *
apply(PyObject *python_apply, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 2 && kwnames == NULL && engine_complete(args[0])) {
        PyObject *engine = args[0], *command = args[1], *events;
        if (Py_TYPE(command) == PlaceOrderType && PyTuple_GET_SIZE(command) == 10) {
            events = place(engine, command);
        }
        else if (Py_TYPE(command) == CancelOrderType && PyTuple_GET_SIZE(command) == 5) {
            events = cancel(engine, command);
        }
        else {
            events = Py_NewRef(Py_None);
        }
        if (events != Py_None) {
            return events; /* the events, or NULL with the exception set */
        }
        Py_DECREF(events);
    }
    return PyObject_Vectorcall(python_apply, args, nargsf, kwnames);
}

static PyMethodDef apply_def = {
    "apply", (PyCFunction)(void (*)(void))apply, METH_FASTCALL | METH_KEYWORDS,
    "apply(command): Engine.apply, its hot path in C.",
};

/* The method that replaces Engine.apply: the compiled path, falling back to
 * ``python_apply``. */
static PyObject *
method(PyObject *module, PyObject *python_apply)
{
    (void)module;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "peerbook.engine._native is not configured");
        return NULL;
    }
    if (!PyCallable_Check(python_apply)) {
        PyErr_SetString(PyExc_TypeError, "method takes the Python Engine.apply");
        return NULL;
    }
    PyObject *function = PyCFunction_New(&apply_def, python_apply);
    if (function == NULL) {
        return NULL;
    }
    PyObject *bound = PyInstanceMethod_New(function);
    Py_DECREF(function);
    return bound;
}

/* ---- reading an order record of a snapshot ---------------------------------------------- */

/* Whether ``value`` is an int (not a bool) of at least 0, of any size. */
static inline int
natural(PyObject *value)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    return overflow > 0 || (!overflow && number >= 0);
}

/* ``value``'s enum member from ``table`` of ``size`` members, or NULL. */
static inline PyObject *
member(PyObject *value, PyObject **table, long size)
{
    if (!PyLong_CheckExact(value)) {
        return NULL;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    return !overflow && number >= 0 && number < size ? table[number] : NULL;
}

/* snapshot.decode_order for a record that passes its one cheap check: ``python_decode`` is
 * the Python function, called for anything else (it says what is wrong). */
static PyObject *
decode_order(PyObject *python_decode, PyObject *value)
{
    if (!PyList_CheckExact(value) || PyList_GET_SIZE(value) != 15) {
        return PyObject_CallOneArg(python_decode, value);
    }
    /* Allocated before the record is read: the allocation may run a garbage collection,
     * whose finalizers could change the list (found by a reviewing helper). Nothing below
     * runs Python code. */
    PyObject *order = OrderType_->tp_alloc(OrderType_, 0);
    if (order == NULL) {
        return NULL;
    }
    if (PyList_GET_SIZE(value) != 15) {
        Py_DECREF(order);
        return PyObject_CallOneArg(python_decode, value);
    }
    PyObject **f = ((PyListObject *)value)->ob_item;
    /* order_id, owner, client_order_id, symbol, side, type, time_in_force, post_only, price,
     * amount, remaining, cost, timestamp, last_trade_timestamp, state */
    PyObject *side = member(f[4], SIDES, 2), *type = member(f[5], TYPES, 2);
    PyObject *time_in_force = member(f[6], TIFS, 3), *state = member(f[14], STATES, 5);
    if (!natural(f[0]) || !PyUnicode_CheckExact(f[1]) ||
        (f[2] != Py_None && !PyUnicode_CheckExact(f[2])) || !PyUnicode_CheckExact(f[3]) ||
        side == NULL || type == NULL || time_in_force == NULL || state == NULL ||
        !PyBool_Check(f[7]) || (f[8] != Py_None && !natural(f[8])) || !natural(f[9]) ||
        !natural(f[10]) || !natural(f[11]) || !natural(f[12]) ||
        (f[13] != Py_None && !natural(f[13]))) {
        Py_DECREF(order);
        return PyObject_CallOneArg(python_decode, value);
    }
    set_slot_borrowed(order, o_order_id, f[0]);
    set_slot_borrowed(order, o_owner, f[1]);
    set_slot_borrowed(order, o_client_order_id, f[2]);
    set_slot_borrowed(order, o_symbol, f[3]);
    set_slot_borrowed(order, o_side, side);
    set_slot_borrowed(order, o_type, type);
    set_slot_borrowed(order, o_time_in_force, time_in_force);
    set_slot_borrowed(order, o_post_only, f[7]);
    set_slot_borrowed(order, o_price, f[8]);
    set_slot_borrowed(order, o_amount, f[9]);
    set_slot_borrowed(order, o_remaining, f[10]);
    set_slot_borrowed(order, o_cost, f[11]);
    set_slot_borrowed(order, o_timestamp, f[12]);
    set_slot_borrowed(order, o_last_trade_timestamp, f[13]);
    set_slot_borrowed(order, o_state, state);
    PyObject_GC_UnTrack(order); /* as new_order: an order can hold no cycle */
    return order;
}

static PyMethodDef decode_order_def = {
    "decode_order", decode_order, METH_O,
    "decode_order(record): an order of a snapshot, read in C where the record is well formed.",
};

static PyObject *
order_decoder(PyObject *module, PyObject *python_decode)
{
    (void)module;
    if (!configured || !PyCallable_Check(python_decode)) {
        PyErr_SetString(PyExc_RuntimeError, "configure first, then pass the Python decoder");
        return NULL;
    }
    return PyCFunction_New(&decode_order_def, python_decode);
}

static PyMethodDef methods[] = {
    {"order_decoder", order_decoder, METH_O,
     "order_decoder(python_decode): snapshot.decode_order read in C, falling back to "
     "python_decode."},
    {"configure", configure, METH_O,
     "configure(names): the engine's classes, enum members, constants and helpers, by name."},
    {"method", method, METH_O,
     "method(python_apply): Engine.apply with its hot path in C, falling back to "
     "python_apply(engine, command)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "peerbook.engine._native",
    "The matching engine's hot path in C, over the Python engine's own objects.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module_def);
}
