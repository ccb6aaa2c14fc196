"""Protobuf <-> domain mappings shared by the server and the client.

The client is a public module applications import; the API's converters pull in the core. A
mapping both sides need lives here, below both, with only generated code and domain types.
"""
