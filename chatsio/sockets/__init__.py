"""Socket.IO: the server and its /control and /chat namespaces."""
