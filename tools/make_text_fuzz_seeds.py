#!/usr/bin/env python3
"""Writes valid inputs as seeds for the text-format fuzz targets (fuzz/fuzz_openai_request.cpp,
fuzz_chat_completion_response.cpp, fuzz_completion_stream.cpp, fuzz_hf_model_dir.cpp, fuzz_config.cpp, fuzz_tokenizer.cpp), one
folder per target under OUT_DIR. Standard library only.
Usage: make_text_fuzz_seeds.py OUT_DIR [CONFIGS_DIR]   (CONFIGS_DIR: the repo's configs/, for defaults.yaml)"""
import json
import os
import random
import struct
import sys

HF_SEPARATOR = b"\n=octet-fuzz-file=\n"   # fuzz_hf_model_dir.cpp's kSeparator
CONFIG_SEPARATOR = b"\n=octet-fuzz-part=\n"  # fuzz_config.cpp's kSeparator
HF_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
            "hf_quant_config.json", "model.safetensors", "model.safetensors.index.json"]


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def openai_requests():
    return {
        "chat": {"model": "smollm2", "messages": [{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": "How to craft iron tools?"}],
                 "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["\n\n"]},
        "chat_stream": {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                                     {"role": "assistant", "content": None}, {"role": "developer", "content": "x"}],
                        "stream": True, "stream_options": {"include_usage": True}, "top_k": -1, "min_p": 0.05,
                        "repetition_penalty": 1.1, "max_completion_tokens": 5, "n": 1, "ignore_eos": True},
        "completion": {"prompt": "Once upon a time", "max_tokens": 16, "stop": "."},
        "completion_ids": {"prompt": [1, 2, 3, 40000], "temperature": 0, "seed": -3},
        "completion_batch_of_one": {"prompt": ["a"], "stream": False, "top_p": 1e-3},
    }


def completion_answers():
    return {
        "ok": {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Mine iron ore."},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}},
        "no_usage": {"choices": [{"message": {"content": ""}}], "usage": None},
        "error": {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "429"}},
    }


def completion_streams():
    chunk = lambda text: "data: " + json.dumps({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                                                "choices": [{"index": 0, "text": text, "finish_reason": None}]}) + "\n\n"
    usage = "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}) + "\n\n"
    return {
        "ours": (chunk("Mine") + chunk(" iron") + usage + "data: [DONE]\n\n").encode(),
        "crlf_and_comments": (": ping\r\n\r\n" + chunk("a").replace("\n", "\r\n") + "data:[DONE]\r\n\r\n").encode(),
        "error": b'data: {"error": {"message": "out of memory", "type": "server_error"}}\n\ndata: [DONE]\n\n',
    }


# ---- a tiny Llama as a Hugging Face directory ---------------------------------------------------

def byte_level_alphabet():
    """GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tiny_tokenizer():
    alphabet = byte_level_alphabet()
    vocab = {alphabet[b]: b for b in range(256)}
    added = [{"id": 256 + i, "content": s, "special": True}
             for i, s in enumerate(["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|pad|>"])]
    return {"version": "1.0", "added_tokens": added,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "model": {"type": "BPE", "vocab": vocab, "merges": []}}


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

SHAPE = dict(layers=1, hidden=32, heads=2, kv_heads=1, head_dim=16, ffn=64, vocab=260)


def tiny_config(quantization=None):
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": SHAPE["hidden"],
              "intermediate_size": SHAPE["ffn"], "num_hidden_layers": SHAPE["layers"],
              "num_attention_heads": SHAPE["heads"], "num_key_value_heads": SHAPE["kv_heads"],
              "head_dim": SHAPE["head_dim"], "vocab_size": SHAPE["vocab"], "max_position_embeddings": 256,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True, "eos_token_id": 257,
              "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
              "torch_dtype": "bfloat16"}
    if quantization:
        config["quantization_config"] = quantization
    return config


def bf16(values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def f32(values):
    return b"".join(struct.pack("<f", v) for v in values)


def safetensors(tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, offset, data = {"__metadata__": {"format": "pt"}}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tiny_tensors(rng, fp8=None):
    """fp8: None (BF16 everywhere), 'tensor' or 'channel' (the linears as E4M3 codes with F32 scales)."""
    s, tensors = SHAPE, []
    def normal(count, mean, std):
        return [rng.gauss(mean, std) for _ in range(count)]
    tensors.append(("model.embed_tokens.weight", "BF16", [s["vocab"], s["hidden"]], bf16(normal(s["vocab"] * s["hidden"], 0, 1))))
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        tensors.append((p + "input_layernorm.weight", "BF16", [s["hidden"]], bf16(normal(s["hidden"], 1, 0.1))))
        tensors.append((p + "post_attention_layernorm.weight", "BF16", [s["hidden"]], bf16(normal(s["hidden"], 1, 0.1))))
        for module, out, inp in [("self_attn.q_proj", q, s["hidden"]), ("self_attn.k_proj", kv, s["hidden"]),
                                 ("self_attn.v_proj", kv, s["hidden"]), ("self_attn.o_proj", s["hidden"], q),
                                 ("mlp.gate_proj", s["ffn"], s["hidden"]), ("mlp.up_proj", s["ffn"], s["hidden"]),
                                 ("mlp.down_proj", s["hidden"], s["ffn"])]:
            name = p + module + ".weight"
            if fp8 is None:
                tensors.append((name, "BF16", [out, inp], bf16(normal(out * inp, 0, 0.15))))
                continue
            codes = bytes(rng.randrange(0, 0x7F) | (0x80 if rng.random() < 0.5 else 0) for _ in range(out * inp))
            tensors.append((name, "F8_E4M3", [out, inp], codes))
            if fp8 == "channel":
                tensors.append((p + module + ".weight_scale", "F32", [out, 1], f32([0.15 / 448 * 4] * out)))
            else:
                tensors.append((p + module + ".weight_scale", "F32", [], f32([0.15 / 448 * 4])))
                tensors.append((p + module + ".input_scale", "F32", [], f32([16 / 448])))
    tensors.append(("model.norm.weight", "BF16", [s["hidden"]], bf16(normal(s["hidden"], 1, 0.1))))
    return tensors


def hf_directory(files):
    """files: name -> bytes or JSON; joined in HF_FILES' order (absent files as empty parts)."""
    parts = []
    for name in HF_FILES:
        value = files.get(name, b"")
        parts.append(value if isinstance(value, bytes) else json.dumps(value).encode())
    while parts and not parts[-1]:
        parts.pop()
    return HF_SEPARATOR.join(parts)


def hf_seeds():
    rng = random.Random(0)
    common = {"tokenizer.json": tiny_tokenizer(),
              "tokenizer_config.json": {"eos_token": "<|im_end|>", "add_bos_token": False, "chat_template": CHATML},
              "generation_config.json": {"eos_token_id": [257, 258], "temperature": 0.6, "top_p": 0.9}}
    modelopt = {"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": None, "exclude_modules": ["lm_head"]}
    channel = {"quant_method": "compressed-tensors", "format": "float-quantized", "quantization_status": "compressed",
               "config_groups": {"group_0": {"targets": ["Linear"],
                                             "weights": {"num_bits": 8, "type": "float", "strategy": "channel",
                                                         "dynamic": False, "symmetric": True},
                                             "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                                                                   "dynamic": True, "symmetric": True}}},
               "ignore": ["lm_head"], "kv_cache_scheme": None}
    bf16_tensors = tiny_tensors(rng)
    return {
        "bf16": hf_directory({**common, "config.json": tiny_config(), "model.safetensors": safetensors(bf16_tensors)}),
        "modelopt_fp8": hf_directory({**common, "config.json": tiny_config(modelopt),
                                      "hf_quant_config.json": {"producer": {"name": "modelopt", "version": "0.23.0"},
                                                               "quantization": {"quant_algo": "FP8",
                                                                                "kv_cache_quant_algo": None,
                                                                                "exclude_modules": ["lm_head"]}},
                                      "model.safetensors": safetensors(tiny_tensors(rng, "tensor"))}),
        "compressed_tensors_channel": hf_directory({**common, "config.json": tiny_config(channel),
                                                    "model.safetensors": safetensors(tiny_tensors(rng, "channel"))}),
        "indexed": hf_directory({**common, "config.json": tiny_config(), "model.safetensors": safetensors(bf16_tensors),
                                 "model.safetensors.index.json": {"metadata": {"total_size": 1},
                                                                  "weight_map": {t[0]: "model.safetensors"
                                                                                 for t in bf16_tensors}}}),
    }


def config_seeds(configs_dir):
    defaults = b""
    if configs_dir and os.path.exists(os.path.join(configs_dir, "defaults.yaml")):
        with open(os.path.join(configs_dir, "defaults.yaml"), "rb") as f:
            defaults = f.read()
    fuzz = b"defaults:\n  - other\n  - _self_\nllm:\n  temperature: 0.1\n  top_k: 40\nengine:\n  max_context_length: 2048\n"
    other = b"llm:\n  precision: bf16\n  model: models/x.gguf\nserver:\n  port: 8080\n"
    overrides = b"llm.top_p=0.9\nllm.device=cpu\nplanner.fallback_to_api=false\n"
    environment = b"USE_FP8=true\nLLM_MODEL=/m.gguf\nOCTET_LLM_SEED=3\nFP8_QUANTIZATION_TYPE=e5m2\nTENSOR_PARALLEL_SIZE=1\n"
    return {"composed": CONFIG_SEPARATOR.join([defaults, fuzz, other, overrides, environment]),
            "overrides_only": CONFIG_SEPARATOR.join([defaults, b"", b"", overrides + b"llm.stop=[a, b]\n", b""]),
            "environment_only": CONFIG_SEPARATOR.join([b"", b"", b"", b"", environment])}


def main():
    out = sys.argv[1]
    configs_dir = sys.argv[2] if len(sys.argv) > 2 else None
    for name, body in openai_requests().items():
        write(os.path.join(out, "openai_request"), name + ".json", json.dumps(body))
    for name, body in completion_answers().items():
        write(os.path.join(out, "chat_completion_response"), name + ".json", json.dumps(body))
    for name, data in completion_streams().items():
        write(os.path.join(out, "completion_stream"), name, data)
    for name, data in hf_seeds().items():
        write(os.path.join(out, "hf_model_dir"), name, data)
    for name, data in config_seeds(configs_dir).items():
        write(os.path.join(out, "config"), name, data)
    for name, text in {"ascii": "How to craft iron tools in Minecraft?\n\n1. Mine  iron ore 123456",
                       "unicode": "wörld — 日本語 🙂 naïve café\t\r\n",
                       "specials": "<|im_start|>user\nhi<|im_end|>\n<|endoftext|><|im_start|"}.items():
        write(os.path.join(out, "tokenizer"), name + ".txt", text)


if __name__ == "__main__":
    main()
