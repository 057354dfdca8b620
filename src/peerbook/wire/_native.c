/*
 * peerbook.wire._native: reading a log entry's command (contract section 7) into an engine
 * command, in C, for the entries that are valid.
 *
 * Why: with the engine's hot path compiled, decoding the JSON document of each command was
 * half the cost of applying an order on every peer. This module builds the PlaceOrder or
 * CancelOrder for a document that `peerbook.wire.requests.decode_entry` would accept, and
 * hands every other document to that Python function unchanged, so every refusal and its
 * sentence has one implementation. Decimal strings are counted from the Python module's
 * memory of decimals already read (`requests._COUNTS`); one it has not read yet also goes to
 * Python, which reads it and remembers it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int configured = 0;
static PyTypeObject *PlaceOrderType, *CancelOrderType;
static PyObject *TYPES, *SIDES, *TIME_IN_FORCE, *COUNTS, *GTC, *MARKET;
static PyObject *s_op, *s_owner, *s_timestamp, *s_args, *s_create, *s_cancel, *s_client_order_id,
    *s_time_in_force, *s_post_only, *s_symbol, *s_amount_step, *s_price_tick, *s_text;
static long long TIMESTAMP_MAX;
static Py_ssize_t CLIENT_ORDER_ID_MAX;

static PyObject *
take(PyObject *names, const char *key)
{
    PyObject *value = PyDict_GetItemString(names, key);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "configure: %s is missing", key);
        return NULL;
    }
    return Py_NewRef(value); /* kept for the life of the process */
}

static PyObject *
configure(PyObject *module, PyObject *names)
{
    (void)module;
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "configure takes a dict");
        return NULL;
    }
    PyObject *timestamp_max, *client_order_id_max;
    if ((PlaceOrderType = (PyTypeObject *)take(names, "PlaceOrder")) == NULL ||
        (CancelOrderType = (PyTypeObject *)take(names, "CancelOrder")) == NULL ||
        (TYPES = take(names, "TYPES")) == NULL || (SIDES = take(names, "SIDES")) == NULL ||
        (TIME_IN_FORCE = take(names, "TIME_IN_FORCE")) == NULL ||
        (COUNTS = take(names, "COUNTS")) == NULL || (GTC = take(names, "GTC")) == NULL ||
        (MARKET = take(names, "MARKET")) == NULL ||
        (timestamp_max = take(names, "TIMESTAMP_MAX")) == NULL ||
        (client_order_id_max = take(names, "CLIENT_ORDER_ID_MAX")) == NULL) {
        return NULL;
    }
    TIMESTAMP_MAX = PyLong_AsLongLong(timestamp_max);
    CLIENT_ORDER_ID_MAX = PyLong_AsSsize_t(client_order_id_max);
    Py_DECREF(timestamp_max);
    Py_DECREF(client_order_id_max);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (!PyDict_CheckExact(TYPES) || !PyDict_CheckExact(SIDES) ||
        !PyDict_CheckExact(TIME_IN_FORCE) || !PyDict_CheckExact(COUNTS)) {
        PyErr_SetString(PyExc_TypeError, "configure: the tables must be dicts");
        return NULL;
    }
    struct {
        PyObject **name;
        const char *text;
    } strings[] = {
        {&s_op, "op"},
        {&s_owner, "owner"},
        {&s_timestamp, "timestamp"},
        {&s_args, "args"},
        {&s_create, "createOrder"},
        {&s_cancel, "cancelOrder"},
        {&s_client_order_id, "clientOrderId"},
        {&s_time_in_force, "timeInForce"},
        {&s_post_only, "postOnly"},
        {&s_symbol, "symbol"},
        {&s_amount_step, "amount_step"},
        {&s_price_tick, "price_tick"},
        {&s_text, "text"},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        if ((*strings[i].name = PyUnicode_InternFromString(strings[i].text)) == NULL) {
            return NULL;
        }
    }
    configured = 1;
    Py_RETURN_NONE;
}

/* ---- pieces of a document; each returns 1 (read), 0 (not this path's) or -1 (error) ---- */

/* ``d[key]`` borrowed, or NULL: absent, or (PyErr_Occurred) failed. */
static inline PyObject *
get(PyObject *d, PyObject *key)
{
    return PyDict_GetItemWithError(d, key);
}

/* A market's increment text: market.<increment>.text, a new reference. */
static PyObject *
increment_text(PyObject *market, PyObject *increment)
{
    PyObject *step = PyObject_GetAttr(market, increment);
    if (step == NULL) {
        return NULL;
    }
    PyObject *text = PyObject_GetAttr(step, s_text);
    Py_DECREF(step);
    return text;
}

/* A decimal string already counted in this increment (requests._COUNTS[text][value]), as
 * a new reference in *out. */
static int
count(PyObject *value, PyObject *market, PyObject *increment, PyObject **out)
{
    if (!PyUnicode_CheckExact(value)) {
        return 0;
    }
    PyObject *text = increment_text(market, increment);
    if (text == NULL) {
        return -1;
    }
    PyObject *counts = PyDict_GetItemWithError(COUNTS, text);
    Py_DECREF(text);
    PyObject *found = counts == NULL || !PyDict_CheckExact(counts)
                          ? NULL
                          : PyDict_GetItemWithError(counts, value);
    if (found == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    *out = Py_NewRef(found);
    return 1;
}

/* ``params``: None, or a dict holding only the allowed keys; sets *client_order_id
 * (borrowed, or None) when it is valid. */
static int
params_of(PyObject *params, int create, PyObject **client_order_id)
{
    *client_order_id = Py_None;
    if (params == Py_None) {
        return 1;
    }
    if (!PyDict_CheckExact(params)) {
        return 0;
    }
    Py_ssize_t known = 0;
    PyObject *value = get(params, s_client_order_id);
    if (value != NULL) {
        known++;
        if (value != Py_None) {
            if (!PyUnicode_CheckExact(value) || PyUnicode_GET_LENGTH(value) == 0 ||
                PyUnicode_GET_LENGTH(value) > CLIENT_ORDER_ID_MAX) {
                return 0;
            }
            *client_order_id = value;
        }
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    if (create) {
        for (int i = 0; i < 2; i++) {
            PyObject *present = get(params, i ? s_post_only : s_time_in_force);
            if (present != NULL) {
                known++;
            }
            else if (PyErr_Occurred()) {
                return -1;
            }
        }
    }
    return PyDict_GET_SIZE(params) == known;
}

/* ---- createOrder ------------------------------------------------------------------------- */

static PyObject *
create(PyObject *owner, PyObject *timestamp, PyObject *args, PyObject *markets)
{
    Py_ssize_t n = PyList_GET_SIZE(args);
    if (n < 4 || n > 6) {
        Py_RETURN_NONE;
    }
    PyObject *symbol = PyList_GET_ITEM(args, 0), *type_name = PyList_GET_ITEM(args, 1);
    PyObject *side_name = PyList_GET_ITEM(args, 2);
    if (!PyUnicode_CheckExact(symbol) || !PyUnicode_CheckExact(type_name) ||
        !PyUnicode_CheckExact(side_name)) {
        Py_RETURN_NONE;
    }
    PyObject *market = get(markets, symbol);
    PyObject *type = market == NULL ? NULL : get(TYPES, type_name);
    PyObject *side = type == NULL ? NULL : get(SIDES, side_name);
    if (side == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *params = n > 5 ? PyList_GET_ITEM(args, 5) : Py_None;
    PyObject *client_order_id, *time_in_force = GTC, *post_only = Py_False;
    int read = params_of(params, 1, &client_order_id);
    if (read <= 0) {
        return read < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (params != Py_None) {
        PyObject *tif = get(params, s_time_in_force);
        if (tif != NULL) {
            PyObject *choice = PyUnicode_CheckExact(tif) ? get(TIME_IN_FORCE, tif) : NULL;
            if (choice == NULL) {
                if (PyErr_Occurred()) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
            time_in_force = PyTuple_GET_ITEM(choice, 0);
            post_only = PyTuple_GET_ITEM(choice, 1);
        }
        PyObject *flag = get(params, s_post_only);
        if (flag != NULL) {
            if (!PyBool_Check(flag) || (post_only == Py_True && flag == Py_False)) {
                Py_RETURN_NONE;
            }
            post_only = flag;
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    PyObject *price_arg = n > 4 ? PyList_GET_ITEM(args, 4) : Py_None;
    PyObject *amount = NULL, *price = NULL;
    read = count(PyList_GET_ITEM(args, 3), market, s_amount_step, &amount);
    if (read == 1 && price_arg != Py_None) {
        read = count(price_arg, market, s_price_tick, &price);
    }
    if (read <= 0) {
        Py_XDECREF(amount);
        return read < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (price == NULL) {
        price = Py_NewRef(Py_None);
    }
    /* requests._check_order_options: a market order has no price and is not post-only; a
     * limit order has a price; post-only is GTC only */
    int market_order = type == MARKET;
    if (market_order ? (price != Py_None || post_only == Py_True)
                     : (price == Py_None || (post_only == Py_True && time_in_force != GTC))) {
        Py_DECREF(amount);
        Py_DECREF(price);
        Py_RETURN_NONE;
    }
    PyObject *market_symbol = PyObject_GetAttr(market, s_symbol);
    if (market_symbol == NULL) {
        Py_DECREF(amount);
        Py_DECREF(price);
        return NULL;
    }
    PyObject *command = PlaceOrderType->tp_alloc(PlaceOrderType, 10);
    if (command == NULL) {
        Py_DECREF(amount);
        Py_DECREF(price);
        Py_DECREF(market_symbol);
        return NULL;
    }
    PyTuple_SET_ITEM(command, 0, Py_NewRef(owner));
    PyTuple_SET_ITEM(command, 1, Py_NewRef(timestamp));
    PyTuple_SET_ITEM(command, 2, market_symbol);
    PyTuple_SET_ITEM(command, 3, Py_NewRef(side));
    PyTuple_SET_ITEM(command, 4, Py_NewRef(type));
    PyTuple_SET_ITEM(command, 5, amount);
    PyTuple_SET_ITEM(command, 6, price);
    PyTuple_SET_ITEM(command, 7, Py_NewRef(time_in_force));
    PyTuple_SET_ITEM(command, 8, Py_NewRef(post_only));
    PyTuple_SET_ITEM(command, 9, Py_NewRef(client_order_id));
    return command;
}

/* ---- cancelOrder ------------------------------------------------------------------------- */

/* An order id: a positive JSON integer, or a string of at most 19 ASCII digits. */
static PyObject *
order_id_of(PyObject *raw)
{
    if (PyLong_CheckExact(raw)) {
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(raw, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow < 0 || (!overflow && value <= 0)) {
            return Py_NewRef(Py_None);
        }
        return Py_NewRef(raw);
    }
    if (!PyUnicode_CheckExact(raw) || !PyUnicode_IS_ASCII(raw)) {
        return Py_NewRef(Py_None);
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(raw);
    const char *digits = (const char *)PyUnicode_1BYTE_DATA(raw);
    if (length == 0 || length > 19) {
        return Py_NewRef(Py_None);
    }
    unsigned long long value = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        if (digits[i] < '0' || digits[i] > '9') {
            return Py_NewRef(Py_None);
        }
        value = value * 10 + (unsigned)(digits[i] - '0'); /* 19 digits fit below 2**64 */
    }
    return PyLong_FromUnsignedLongLong(value);
}

static PyObject *
cancel(PyObject *owner, PyObject *timestamp, PyObject *args, PyObject *markets)
{
    Py_ssize_t n = PyList_GET_SIZE(args);
    if (n < 1 || n > 3) {
        Py_RETURN_NONE;
    }
    PyObject *symbol_arg = n > 1 ? PyList_GET_ITEM(args, 1) : Py_None;
    PyObject *market_symbol = NULL; /* the market's own symbol string, or NULL for none */
    if (symbol_arg != Py_None) {
        PyObject *market = PyUnicode_CheckExact(symbol_arg) ? get(markets, symbol_arg) : NULL;
        if (market == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        if ((market_symbol = PyObject_GetAttr(market, s_symbol)) == NULL) {
            return NULL;
        }
    }
    PyObject *client_order_id;
    int read = params_of(n > 2 ? PyList_GET_ITEM(args, 2) : Py_None, 0, &client_order_id);
    PyObject *raw = PyList_GET_ITEM(args, 0), *order_id = NULL;
    if (read == 1 && raw != Py_None) {
        client_order_id = Py_None; /* named by id: the client order id is only checked */
        order_id = order_id_of(raw);
        if (order_id == NULL) {
            read = -1;
        }
        else if (order_id == Py_None) {
            read = 0;
        }
    }
    else if (read == 1 && client_order_id == Py_None) {
        read = 0; /* neither an id nor a client order id */
    }
    if (read <= 0) {
        Py_XDECREF(order_id);
        Py_XDECREF(market_symbol);
        return read < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (order_id == NULL) {
        order_id = Py_NewRef(Py_None);
    }
    PyObject *command = CancelOrderType->tp_alloc(CancelOrderType, 5);
    if (command == NULL) {
        Py_DECREF(order_id);
        Py_XDECREF(market_symbol);
        return NULL;
    }
    PyTuple_SET_ITEM(command, 0, Py_NewRef(owner));
    PyTuple_SET_ITEM(command, 1, Py_NewRef(timestamp));
    PyTuple_SET_ITEM(command, 2, order_id);
    PyTuple_SET_ITEM(command, 3, Py_NewRef(client_order_id));
    PyTuple_SET_ITEM(command, 4, market_symbol == NULL ? Py_NewRef(Py_None) : market_symbol);
    return command;
}

/* ---- the entry --------------------------------------------------------------------------- */

static PyObject *
decode(PyObject *entry, PyObject *markets)
{
    if (!PyDict_CheckExact(entry) || PyDict_GET_SIZE(entry) != 4 || !PyDict_CheckExact(markets)) {
        Py_RETURN_NONE;
    }
    PyObject *op = get(entry, s_op), *owner = get(entry, s_owner);
    PyObject *timestamp = get(entry, s_timestamp), *args = get(entry, s_args);
    if (op == NULL || owner == NULL || timestamp == NULL || args == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (!PyUnicode_CheckExact(owner) || PyUnicode_GET_LENGTH(owner) == 0 ||
        !PyLong_CheckExact(timestamp) || !PyList_CheckExact(args) || !PyUnicode_CheckExact(op)) {
        Py_RETURN_NONE;
    }
    int overflow = 0;
    long long when = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
    if (when == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || when < 0 || when > TIMESTAMP_MAX) {
        Py_RETURN_NONE;
    }
    if (op == s_create || PyUnicode_Compare(op, s_create) == 0) {
        return create(owner, timestamp, args, markets);
    }
    if (op == s_cancel || PyUnicode_Compare(op, s_cancel) == 0) {
        return cancel(owner, timestamp, args, markets);
    }
    Py_RETURN_NONE;
}

/* requests.decode_entry: ``python_decode`` is the Python function, called for whatever this
 * module does not build. */
static PyObject *
decode_entry(PyObject *python_decode, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "decode_entry(entry, markets)");
        return NULL;
    }
    PyObject *command = decode(args[0], args[1]);
    if (command != Py_None) {
        return command;
    }
    Py_DECREF(command);
    return PyObject_Vectorcall(python_decode, args, 2, NULL);
}

static PyMethodDef decode_entry_def = {
    "decode_entry", (PyCFunction)(void (*)(void))decode_entry, METH_FASTCALL,
    "decode_entry(entry, markets): a log line's command, read in C where it is valid.",
};

static PyObject *
decoder(PyObject *module, PyObject *python_decode)
{
    (void)module;
    if (!configured || !PyCallable_Check(python_decode)) {
        PyErr_SetString(PyExc_RuntimeError, "configure first, then pass the Python decoder");
        return NULL;
    }
    return PyCFunction_New(&decode_entry_def, python_decode);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O,
     "configure(names): the command classes, choice tables, decimal memory and limits."},
    {"decoder", decoder, METH_O,
     "decoder(python_decode): decode_entry read in C, falling back to python_decode."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "peerbook.wire._native",
    "Reading valid log entries into engine commands, in C.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module_def);
}
