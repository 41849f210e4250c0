"""``vlmkit webchat RUN``: a Gradio page for talking with a trained model about a video (upload or pick one, see
the frames the model receives, ask, watch the answer stream in, keep a conversation, tune the generation).

Split by concern: ``frames`` (the preview of the sampled frames), ``callbacks`` (the conversation logic, plain
Python, testable without a browser), ``app`` (the Gradio layout and its wiring) and ``command`` (the CLI). Gradio
is imported only by ``app`` and ``command``: it is the optional extra ``vlmkit[webchat]``."""
