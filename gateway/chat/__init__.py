"""The OpenAI chat completions format as the gateway uses it.

Both sides of the gateway speak it: the ``openai`` backend sends conversations to model
servers, and the ``/v1/chat/completions`` route receives them from applications. What they share
(the decision's input and output shapes) lives here, below both, as ``gateway.oip`` does for
tensors.
"""
