"""The Gradio page of ``vlmkit webchat``: the video (upload or an example) and its sampled frames on the left, the
conversation, the question box and the generation settings on the right; the buttons call ``WebChat``."""
from __future__ import annotations

import gradio as gr

from vlmkit.inference.webchat.callbacks import READY, WebChat


def slider_range(low: float, high: float, value: float) -> tuple[float, float]:
    """A slider's bounds widened to hold the model's own default."""
    return min(low, value), max(high, value)


def build_app(chat: WebChat) -> gr.Blocks:
    """The page (not launched). Elements the browser test finds carry ``elem_id``s."""
    start = chat.defaults()
    with gr.Blocks(title="vlmkit webchat", analytics_enabled=False) as app:
        gr.Markdown(f"## vlmkit webchat\n`{chat.model.checkpoint}`")
        conversation = gr.State([])
        with gr.Row():
            with gr.Column(scale=2):
                # format None, audio kept: the uploaded file goes to the model untouched (no ffmpeg re-encoding)
                video = gr.Video(label="Video", sources=["upload"], format=None, include_audio=True,
                                 elem_id="video", height=300)
                example = gr.Dropdown(choices=list(chat.examples), value=None, label="Or pick an example",
                                      elem_id="examples", visible=bool(chat.examples))
                frames_line = gr.Markdown(elem_id="frames-info")
                gallery = gr.Gallery(label="Sampled frames (what the model receives)", allow_preview=True,
                                     columns=min(8, chat.model.contract.num_frames), height=240,
                                     interactive=False, elem_id="frames")
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=380, elem_id="chat")
                question = gr.Textbox(label="Question", placeholder="Ask about the video, then press Enter",
                                      elem_id="question")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    reset = gr.Button("New conversation", elem_id="reset")
                status = gr.Markdown(READY, elem_id="status")
                with gr.Accordion("Generation settings", open=True):
                    low, high = slider_range(1, 512, start["max_new_tokens"])
                    max_new_tokens = gr.Slider(low, high, value=start["max_new_tokens"], step=1,
                                               label="Max new tokens", elem_id="max-new-tokens")
                    greedy = gr.Checkbox(value=start["greedy"], label="Greedy (untick to sample)", elem_id="greedy")
                    with gr.Row():
                        low, high = slider_range(0.05, 2.0, start["temperature"])
                        temperature = gr.Slider(low, high, value=start["temperature"], step=0.05,
                                                label="Temperature (sampling)", elem_id="temperature")
                        low, high = slider_range(0.05, 1.0, start["top_p"])
                        top_p = gr.Slider(low, high, value=start["top_p"], step=0.05, label="Top-p (sampling)",
                                          elem_id="top-p")
                    low, high = slider_range(1.0, 2.0, start["repetition_penalty"])
                    repetition_penalty = gr.Slider(low, high, value=start["repetition_penalty"], step=0.05,
                                                   label="Repetition penalty", elem_id="repetition-penalty")

        # a new video (uploaded, picked or cleared) shows its frames and starts a new conversation
        video.change(chat.show_video, [video], [gallery, frames_line, chatbot, conversation, status])
        example.change(chat.pick_example, [example], [video])
        asking = dict(fn=chat.respond, outputs=[chatbot, conversation, question, status],
                      inputs=[question, video, conversation, max_new_tokens, greedy, temperature, top_p,
                              repetition_penalty])
        send.click(**asking)
        question.submit(**asking)
        reset.click(chat.reset, None, [chatbot, conversation, question, status])
    # one model: one generation at a time, the rest wait in Gradio's queue
    app.queue(default_concurrency_limit=1)
    return app
