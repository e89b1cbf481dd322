"""The websocket JSON-RPC API: authentication, connections, dispatch, handlers."""
