#pragma once
// A tiny Llama (2 layers, GQA 4 query / 2 KV heads, hidden 64, vocab 260) with random weights, and
// writers for it as a Hugging Face directory in the published layouts: BF16/F16/F32, ModelOpt FP8,
// compressed-tensors FP8 (per tensor / channel here, 128×128 blocks: write_compressed_tensors_block_dir).
// The quantized layouts are made here by the tests' own reference code
// (exhaustive-search E4M3 rounding, scales = amax / 448), independent of src/.
#include "backend/backend.h"
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/weight_source.h"
#include "support/safetensors_writer.h"
#include "tokenizer/byte_level.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace octet::testing {

namespace fs = std::filesystem;

struct TinyLlama {
  int64_t layers = 2, hidden = 64, heads = 4, kv_heads = 2, head_dim = 16, ffn = 128, vocab = 260;
  bool tied = false;
  std::map<std::string, std::vector<int64_t>> shapes;  // HF names, in write order below
  std::map<std::string, std::vector<float>> weights;
  std::vector<std::string> order;

  static std::vector<std::string> linear_modules(int64_t layers) {
    std::vector<std::string> out;
    for (int64_t i = 0; i < layers; ++i)
      for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                            "mlp.up_proj", "mlp.down_proj"})
        out.push_back("model.layers." + std::to_string(i) + "." + m);
    return out;
  }

  // Weights rounded to BF16 already, so every 16-bit layout stores them exactly. `m` gives the sizes.
  static TinyLlama random(std::mt19937_64& rng, bool tied_embeddings = false) { return random(rng, tied_embeddings, TinyLlama()); }
  static TinyLlama random(std::mt19937_64& rng, bool tied_embeddings, TinyLlama m) {
    m.tied = tied_embeddings;
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto add = [&](const std::string& name, std::vector<int64_t> shape, float mean, float stddev) {
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      std::vector<float> values(static_cast<size_t>(count));
      for (auto& v : values) v = bf16_value(bf16_bits(mean + stddev * normal(rng)));
      m.shapes[name] = shape;
      m.weights[name] = values;
      m.order.push_back(name);
    };
    add("model.embed_tokens.weight", {m.vocab, m.hidden}, 0.0f, 1.0f);
    for (int64_t i = 0; i < m.layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      const int64_t q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim;
      add(p + "input_layernorm.weight", {m.hidden}, 1.0f, 0.1f);
      add(p + "self_attn.q_proj.weight", {q, m.hidden}, 0.0f, 0.15f);
      add(p + "self_attn.k_proj.weight", {kv, m.hidden}, 0.0f, 0.15f);
      add(p + "self_attn.v_proj.weight", {kv, m.hidden}, 0.0f, 0.15f);
      add(p + "self_attn.o_proj.weight", {m.hidden, q}, 0.0f, 0.15f);
      add(p + "post_attention_layernorm.weight", {m.hidden}, 1.0f, 0.1f);
      add(p + "mlp.gate_proj.weight", {m.ffn, m.hidden}, 0.0f, 0.15f);
      add(p + "mlp.up_proj.weight", {m.ffn, m.hidden}, 0.0f, 0.15f);
      add(p + "mlp.down_proj.weight", {m.hidden, m.ffn}, 0.0f, 0.1f);
    }
    add("model.norm.weight", {m.hidden}, 1.0f, 0.1f);
    if (!tied_embeddings) add("lm_head.weight", {m.vocab, m.hidden}, 0.0f, 0.15f);
    return m;
  }

  nlohmann::json config_json() const {
    return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", hidden},
            {"intermediate_size", ffn}, {"num_hidden_layers", layers}, {"num_attention_heads", heads},
            {"num_key_value_heads", kv_heads}, {"head_dim", head_dim}, {"vocab_size", vocab},
            {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
            {"tie_word_embeddings", tied}, {"bos_token_id", nullptr}, {"eos_token_id", 257},
            {"torch_dtype", "bfloat16"}};
  }
};

// 256 byte-level tokens, then <|im_start|> 256, <|im_end|> 257, <|endoftext|> 258, <|pad|> 259.
inline nlohmann::json tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[tokenizer::bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  nlohmann::json added = nlohmann::json::array();
  int id = 256;
  for (const char* special : {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|pad|>"})
    added.push_back({{"id", id++}, {"content", special}, {"special", true}});
  return {{"version", "1.0"}, {"added_tokens", added},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
}

inline const char* kChatMlTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

inline void write_tiny_tokenizer(const fs::path& dir, const std::string& chat_template = kChatMlTemplate) {
  write_text(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  write_text(dir / "tokenizer_config.json",
             nlohmann::json{{"eos_token", "<|im_end|>"}, {"add_bos_token", false}, {"chat_template", chat_template}}.dump(2));
  write_text(dir / "generation_config.json", nlohmann::json{{"eos_token_id", {257, 258}}, {"temperature", 0.6}}.dump(2));
}

// Shards tensors into `shards` files (model-0000i-of-0000n.safetensors + index) or one model.safetensors.
inline void write_weights(const fs::path& dir, const std::vector<StTensor>& tensors, int shards = 1) {
  if (shards <= 1) {
    write_bytes(dir / "model.safetensors", safetensors_bytes(tensors, {{"format", "pt"}}));
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  const size_t per_shard = (tensors.size() + static_cast<size_t>(shards) - 1) / static_cast<size_t>(shards);
  for (int s = 0; s < shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
    const size_t begin = static_cast<size_t>(s) * per_shard, end = std::min(tensors.size(), begin + per_shard);
    std::vector<StTensor> part(tensors.begin() + static_cast<std::ptrdiff_t>(begin),
                               tensors.begin() + static_cast<std::ptrdiff_t>(end));
    for (const auto& t : part) {
      weight_map[t.name] = name;
      total += t.data.size();
    }
    write_bytes(dir / name, safetensors_bytes(part, {{"format", "pt"}}));
  }
  write_text(dir / "model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2));
}

// ---- the tests' reference FP8 quantization --------------------------------------------------

struct ReferenceFp8 {
  std::vector<uint8_t> codes;
  std::vector<float> scales;  // one (per tensor) or one per row
};

inline ReferenceFp8 reference_quantize(const std::vector<float>& w, int64_t rows, int64_t cols, bool per_channel) {
  ReferenceFp8 q;
  auto scale_of = [](float amax) { return amax > 0 ? amax / 448.0f : 1.0f; };
  if (!per_channel) {
    float amax = 0;
    for (float v : w) amax = std::max(amax, std::fabs(v));
    q.scales = {scale_of(amax)};
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      float amax = 0;
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      q.scales.push_back(scale_of(amax));
    }
  }
  q.codes.resize(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = q.scales[per_channel ? static_cast<size_t>(r) : 0];
    // The product with the float reciprocal, as every FP8 quantizer computes x / scale.
    const float inverse = 1.0f / scale;
    for (int64_t c = 0; c < cols; ++c) q.codes[r * cols + c] = e4m3_code(w[r * cols + c] * inverse);
  }
  return q;
}

// One scale per 128×128 block ([ceil(rows/128), ceil(cols/128)], row-major; the last blocks partial),
// amax / 448 rounded to BF16 first where the checkpoint stores BF16 scales (the codes are those of the
// stored scale, as compressed-tensors quantizes with the scale it saves).
inline ReferenceFp8 reference_quantize_blocks(const std::vector<float>& w, int64_t rows, int64_t cols, bool bf16_scales) {
  constexpr int64_t kBlock = 128;
  const int64_t row_blocks = (rows + kBlock - 1) / kBlock, col_blocks = (cols + kBlock - 1) / kBlock;
  ReferenceFp8 q;
  q.codes.resize(w.size());
  for (int64_t rb = 0; rb < row_blocks; ++rb)
    for (int64_t cb = 0; cb < col_blocks; ++cb) {
      const int64_t r_end = std::min(rows, (rb + 1) * kBlock), c_end = std::min(cols, (cb + 1) * kBlock);
      float amax = 0;
      for (int64_t r = rb * kBlock; r < r_end; ++r)
        for (int64_t c = cb * kBlock; c < c_end; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      float scale = amax > 0 ? amax / 448.0f : 1.0f;
      if (bf16_scales) scale = bf16_value(bf16_bits(scale));
      q.scales.push_back(scale);
      const float inverse = 1.0f / scale;
      for (int64_t r = rb * kBlock; r < r_end; ++r)
        for (int64_t c = cb * kBlock; c < c_end; ++c) q.codes[r * cols + c] = e4m3_code(w[r * cols + c] * inverse);
    }
  return q;
}

// A WeightSource written here: float weights, and optionally the tests' own FP8 codes for linears
// (with static input scales and KV scales), handed to LlamaModel through the interface.
class TestWeightSource final : public model::WeightSource {
 public:
  std::map<std::string, std::vector<float>> weights;
  std::map<std::string, ReferenceFp8> fp8;  // by module
  std::map<std::string, ReferenceFp8> fp8_blocks;  // by module, scales per 128×128 block
  std::map<std::string, float> input_scales;
  std::vector<model::KvScales> kv;
  std::vector<std::string> keep_16bit;

  bool has(const std::string& name) const override { return weights.count(name) != 0; }
  std::vector<float> load(const std::string& name, const std::vector<int64_t>&) const override { return weights.at(name); }
  model::LinearWeights load_linear(const std::string& module, int64_t out, int64_t in) const override {
    model::LinearWeights w;
    w.keep_16bit = std::find(keep_16bit.begin(), keep_16bit.end(), module) != keep_16bit.end();
    if (const auto it = input_scales.find(module); it != input_scales.end()) w.input_scale = it->second;
    if (const auto b = fp8_blocks.find(module); b != fp8_blocks.end()) {
      w.e4m3_codes = b->second.codes;
      w.block_scales = b->second.scales;
      return w;
    }
    const auto q = fp8.find(module);
    if (q == fp8.end()) {
      w.values = weights.at(module + ".weight");
      return w;
    }
    w.e4m3_codes = q->second.codes;
    w.channel_scales = q->second.scales.size() == 1 ? std::vector<float>(static_cast<size_t>(out), q->second.scales[0])
                                                    : q->second.scales;
    (void)in;
    return w;
  }
  // With FP8 layers it stands for a pre-quantized checkpoint, which decides the auto vocabulary settings.
  bool prequantized() const override { return !fp8.empty(); }
  bool stores_fp8(const std::string& module) const override { return fp8.count(module) != 0; }
  std::optional<model::KvScales> kv_scales(int64_t layer) const override {
    if (kv.empty()) return std::nullopt;
    return kv[static_cast<size_t>(layer)];
  }
};

// compressed-tensors FP8_BLOCK (llm-compressor's preset, as RedHatAI/*-FP8-block publish it): every
// body linear F8_E4M3 with weight_scale [ceil(out/128), ceil(in/128)] in scale_dtype ("BF16", the
// checkpoint dtype llm-compressor saves scales in, or "F32"), dynamic activations in 1x128 groups, no
// input_scale; embeddings, norms and lm_head BF16 (lm_head ignored). Returns the tests' reference
// source: float weights, with the same codes and block scales for the linears.
inline TestWeightSource write_compressed_tensors_block_dir(const fs::path& dir, const TinyLlama& m,
                                                           const std::string& scale_dtype = "BF16") {
  TestWeightSource source;
  source.weights = m.weights;
  std::vector<StTensor> tensors;
  const auto modules = TinyLlama::linear_modules(m.layers);
  for (const auto& name : m.order) {
    const std::string module = name.substr(0, name.size() - 7);  // without ".weight"
    if (std::find(modules.begin(), modules.end(), module) == modules.end()) {
      tensors.push_back({name, "BF16", m.shapes.at(name), bf16_bytes(m.weights.at(name))});
      continue;
    }
    const auto& shape = m.shapes.at(name);
    ReferenceFp8 q = reference_quantize_blocks(m.weights.at(name), shape[0], shape[1], scale_dtype == "BF16");
    tensors.push_back({name, "F8_E4M3", shape, q.codes});
    const std::vector<int64_t> scale_shape{(shape[0] + 127) / 128, (shape[1] + 127) / 128};
    tensors.push_back({module + ".weight_scale", scale_dtype, scale_shape,
                       scale_dtype == "BF16" ? bf16_bytes(q.scales) : f32_bytes(q.scales)});
    source.fp8_blocks[module] = std::move(q);
  }
  const nlohmann::json weights = {{"actorder", nullptr}, {"block_structure", {128, 128}}, {"dynamic", false},
                                  {"group_size", nullptr}, {"num_bits", 8}, {"observer", "minmax"},
                                  {"observer_kwargs", nlohmann::json::object()}, {"strategy", "block"},
                                  {"symmetric", true}, {"type", "float"}};
  const nlohmann::json inputs = {{"actorder", nullptr}, {"block_structure", nullptr}, {"dynamic", true},
                                 {"group_size", 128}, {"num_bits", 8}, {"observer", nullptr},
                                 {"observer_kwargs", nlohmann::json::object()}, {"strategy", "group"},
                                 {"symmetric", true}, {"type", "float"}};
  nlohmann::json config = m.config_json();
  config["quantization_config"] = {
      {"config_groups",
       {{"group_0",
         {{"format", "float-quantized"}, {"input_activations", inputs}, {"output_activations", nullptr},
          {"targets", {"Linear"}}, {"weights", weights}}}}},
      {"format", "float-quantized"},
      {"global_compression_ratio", nullptr},
      {"ignore", {"lm_head"}},
      {"kv_cache_scheme", nullptr},
      {"quant_method", "compressed-tensors"},
      {"quantization_status", "compressed"},
      {"sparsity_config", nlohmann::json::object()},
      {"transform_config", nlohmann::json::object()},
      {"version", "0.11.0"}};
  write_text(dir / "config.json", config.dump(2));
  write_tiny_tokenizer(dir);
  write_weights(dir, tensors);
  return source;
}

// Logits of every position of a fixed token sequence (bytes and specials of the tiny vocabulary).
// The embedding table and LM head take `vocab` in fp8 precision (bf16 by default: the layouts'
// tests compare the body's linears; the vocabulary settings have tests of their own).
inline std::vector<float> tiny_logits(const model::LlamaConfig& config, const model::WeightSource& weights,
                                      Precision precision = Precision::fp8, VocabPrecision vocab = VocabPrecision::bf16,
                                      backend::Backend* on = nullptr) {  // nullptr: a one-thread CPU backend
  static const std::vector<int32_t> kTokens = {256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 257, 10};
  std::unique_ptr<backend::Backend> cpu;
  if (!on) {
    cpu = backend::make_cpu_backend(1);
    on = cpu.get();
  }
  model::ModelOptions options;
  options.precision = precision;
  options.max_context = 64;
  if (precision == Precision::fp8) options.lm_head_precision = options.embedding_precision = vocab;
  model::LlamaModel model(config, &weights, *on, options);
  backend::TokenBatch batch;
  std::vector<int64_t> rows;
  for (size_t i = 0; i < kTokens.size(); ++i) {
    batch.tokens.push_back(kTokens[i]);
    batch.positions.push_back(static_cast<int64_t>(i));
    batch.slots.push_back(0);
    rows.push_back(static_cast<int64_t>(i));
  }
  std::vector<float> out(rows.size() * static_cast<size_t>(config.vocab));
  model.forward(batch, rows, out.data());
  return out;
}

// ‖a − b‖ / ‖b‖ in double.
inline double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

inline fs::path fresh_directory(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("octet_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace octet::testing
