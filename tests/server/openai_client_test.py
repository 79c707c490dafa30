#!/usr/bin/env python3
"""The official `openai` Python package against `octet serve` on loopback (real SmolLM2, CPU):
models, chat, streaming chat with usage, completions, streaming completions, errors the client maps
to its exception types, then SIGTERM and exit status 0.

usage: openai_client_test.py BUILD_DIR   (run from the repository root, where models/ is)
Exits 77 (CTest: skipped) when the openai package is missing; scripts/setup.sh installs it in
BUILD_DIR/venv, and this script re-runs itself under that interpreter when it exists.
"""
import os
import re
import signal
import subprocess
import sys
import time

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
try:
    import openai
except ImportError:
    venv = os.path.join(build, "venv")
    venv_python = os.path.join(venv, "bin", "python")
    if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(venv_python, [venv_python, *sys.argv])
    print("SKIP: the openai package is not installed (scripts/setup.sh puts it in BUILD_DIR/venv)")
    sys.exit(77)

KEY = "sk-python-client-test"
server = subprocess.Popen(
    [os.path.join(build, "octet"), "serve", "--port", "0", "--device", "cpu", "--max-context", "1024",
     "--max-concurrency", "4", "--api-key", KEY, "server.shutdown_timeout_s=2"],
    stdout=subprocess.PIPE, text=True)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


try:
    line = server.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        print("FAIL the server did not start: " + line)
        sys.exit(1)
    base_url = f"http://127.0.0.1:{match.group(1)}/v1"
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=120)

    models = client.models.list()
    model = models.data[0].id
    check(len(models.data) == 1 and model.startswith("SmolLM2"), f"models.list gives the served model ({model})")

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    text = chat.choices[0].message.content
    check(isinstance(text, str) and len(text) > 0, f"chat answers ({text!r})")
    check(chat.choices[0].finish_reason in ("stop", "length"), "chat finish_reason is stop or length")
    check(chat.usage.completion_tokens <= 8 and chat.usage.prompt_tokens > 0, "chat usage counts tokens")
    check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, "chat usage total")

    pieces, usage, finish = [], None, None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    check("".join(pieces) == text, "streaming chat gives the same greedy text")
    check(finish == chat.choices[0].finish_reason, "streaming chat ends with the same finish_reason")
    check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens, "streaming chat sends usage last")

    completion = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=0)
    check(completion.usage.completion_tokens == 6, "completion generates max_tokens")
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=6, temperature=0, stream=True) if c.choices)
    check(streamed == completion.choices[0].text, "streaming completion gives the same text")

    stopped = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=0,
                                        stop=[completion.choices[0].text[2:4]])
    check(stopped.choices[0].finish_reason == "stop", "a stop string ends with finish_reason stop")

    def raises(kind, call):
        try:
            call()
        except kind:
            return True
        except Exception as e:  # noqa: BLE001 - reported as the wrong kind
            print(f"     got {type(e).__name__}: {e}")
        return False

    check(raises(openai.AuthenticationError, lambda: openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0)
                 .chat.completions.create(model=model, messages=messages, max_tokens=2)), "a wrong key is a 401")
    check(raises(openai.NotFoundError, lambda: client.chat.completions.create(
        model="no-such-model", messages=messages, max_tokens=2)), "an unknown model is a 404")
    check(raises(openai.BadRequestError, lambda: client.chat.completions.create(
        model=model, messages=messages, max_tokens=2, temperature=5)), "temperature 5 is a 400")
    check(raises(openai.BadRequestError, lambda: client.chat.completions.create(
        model=model, messages=messages, max_tokens=100000)), "max_tokens beyond the context is a 400")
finally:
    server.send_signal(signal.SIGTERM)
    try:
        status = server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        status = "killed after 20 s"
    check(status == 0, f"SIGTERM: the server exits 0 (got {status})")

sys.exit(1 if failures else 0)
