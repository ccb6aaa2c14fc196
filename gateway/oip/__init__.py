"""Open Inference Protocol tensors and their wire encoding.

Both sides of the gateway speak the protocol: the OIP backend client sends tensors to model
servers, and the inference API receives them from applications. The code they share lives here,
below both, so neither imports the other.
"""
