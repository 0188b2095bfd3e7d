#!/usr/bin/env python3
"""Drives a running `bitnet serve` with the official `openai` Python client: chat, streaming chat,
completions, streaming completions, and errors. Exits 0 when every check holds, else prints the
failures and exits 1. Used by BitNetCommandLineTests (ServeCommandTests) against the fixture model.

    python openai_client_check.py --base-url http://127.0.0.1:PORT/v1
"""
import argparse
import sys

import openai

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", required=True)
parser.add_argument("--api-key", default="sk-no-key-required")
args = parser.parse_args()

client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


models = client.models.list()
model = models.data[0].id
check(len(models.data) == 1 and model.endswith(".gguf"), f"models: {models}")

messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a list?"}]
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0)
choice = chat.choices[0]
check(chat.object == "chat.completion", f"chat object: {chat.object}")
check(choice.message.role == "assistant" and isinstance(choice.message.content, str), f"chat message: {choice.message}")
check(choice.finish_reason in ("stop", "length"), f"chat finish_reason: {choice.finish_reason}")
check(chat.usage.completion_tokens > 0 and chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, f"chat usage: {chat.usage}")

stream = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0, stream=True,
                                        stream_options={"include_usage": True})
pieces, reasons, usage = [], [], None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for streamed in chunk.choices:
        if streamed.delta.content:
            pieces.append(streamed.delta.content)
        if streamed.finish_reason:
            reasons.append(streamed.finish_reason)
check("".join(pieces) == choice.message.content, f"streamed chat {''.join(pieces)!r} != {choice.message.content!r}")
check(reasons == [choice.finish_reason], f"streamed finish reasons: {reasons}")
check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens, f"streamed usage: {usage}")

with_logprobs = client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
content = with_logprobs.choices[0].logprobs.content
check(len(content) == with_logprobs.usage.completion_tokens and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content),
      f"chat logprobs: {content}")

completion = client.completions.create(model=model, prompt="def main(", max_tokens=12, temperature=0, seed=1)
check(completion.object == "text_completion" and len(completion.choices[0].text) > 0, f"completion: {completion}")
streamed_text = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="def main(", max_tokens=12, temperature=0, stream=True)
                        if c.choices)
check(streamed_text == completion.choices[0].text, f"streamed completion {streamed_text!r} != {completion.choices[0].text!r}")

try:
    client.completions.create(model=model, prompt="word " * 5000, max_tokens=4)
    failures.append("a prompt longer than the context was answered")
except openai.BadRequestError as error:
    check(error.status_code == 400 and error.code == "context_length_exceeded", f"too long: {error}")

try:
    client.chat.completions.create(model=model, messages="hello", max_tokens=4)
    failures.append("messages of the wrong type were answered")
except openai.BadRequestError as error:
    check(error.status_code == 400 and error.param == "messages", f"bad messages: {error}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"openai {openai.__version__}: all checks passed")
