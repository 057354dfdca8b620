'use strict'

// Optional preload: `node --require ./loopback.js --require ./parent_watch.js ...`.
//
// When INTEROP_EXIT_WITH_PARENT=1 is set (the pytest harness sets it), the process
// exits by itself (code 4) as soon as the process that started it is gone, i.e.
// when it gets re-parented. This keeps grapes and servers from outliving a test run
// that was killed before it could stop them. It checks once a second and never keeps
// the event loop alive on its own. Without the variable it does nothing.

if (process.env.INTEROP_EXIT_WITH_PARENT === '1') {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid !== parent) process.exit(4)
  }, 1000)
  timer.unref()
}
