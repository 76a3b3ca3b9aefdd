"""The request engine: one ``Call`` per request reserves in strategy order, calls, fails
over, learns from headers, settles and records; the stream wrappers and the served record
are its parts. ``Router.completion``, ``acompletion`` and the proxy's relay drive it."""
