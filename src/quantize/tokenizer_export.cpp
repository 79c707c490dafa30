// tokenizer.json in the layout of the `tokenizers` library: a byte-level BPE model (vocab, merges),
// the pre-tokenizer of the model family, special tokens as added tokens, and a byte-level decoder.
#include "quantize/tokenizer_export.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/error.h"

namespace octet::quantize {
namespace {

// Plain (key-sorted) JSON: ordered_json looks keys up linearly, too slow for a 128k-entry vocabulary.
using ordered_json = nlohmann::json;

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

ordered_json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

ordered_json pre_tokenizer(tokenizer::PreTokenizerKind kind) {
  switch (kind) {
    case tokenizer::PreTokenizerKind::smollm:
      return {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
    case tokenizer::PreTokenizerKind::llama3:
      return {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                byte_level(false)}}};
    case tokenizer::PreTokenizerKind::gpt2: return byte_level(true);
  }
  return byte_level(true);
}

void write_json(const std::filesystem::path& path, const ordered_json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) fail("{}: write failed", path.string());
}

}  // namespace

void write_tokenizer_files(const tokenizer::Tokenizer& tokenizer, const std::string& chat_template_text,
                           const std::string& directory) {
  const tokenizer::Vocabulary& v = tokenizer.vocabulary();
  ordered_json vocab = ordered_json::object();
  ordered_json added = ordered_json::array();
  std::set<std::string> seen;
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    const std::string& text = v.tokens[id];
    const bool special = id < v.special.size() && v.special[id];
    // A JSON object holds each text once; a repeated text keeps its id as an added token.
    if (seen.insert(text).second) vocab[text] = id;
    if (special || vocab[text] != id)
      added.push_back({{"id", id}, {"content", text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", special}});
  }
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : v.merges) merges.push_back(left + " " + right);

  ordered_json post_processor = nullptr;
  if (v.add_bos && v.bos_id) {
    const std::string bos = v.tokens[static_cast<size_t>(*v.bos_id)];
    post_processor = {{"type", "TemplateProcessing"},
                      {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                      {"pair", ordered_json::array()},
                      {"special_tokens", {{bos, {{"id", bos}, {"ids", {*v.bos_id}}, {"tokens", {bos}}}}}}};
  }
  const ordered_json json = {{"version", "1.0"},
                             {"truncation", nullptr},
                             {"padding", nullptr},
                             {"added_tokens", added},
                             {"normalizer", nullptr},
                             {"pre_tokenizer", pre_tokenizer(tokenizer.pre_tokenizer_kind())},
                             {"post_processor", post_processor},
                             {"decoder", byte_level(true)},
                             {"model",
                              {{"type", "BPE"},
                               {"dropout", nullptr},
                               {"unk_token", nullptr},
                               {"continuing_subword_prefix", nullptr},
                               {"end_of_word_suffix", nullptr},
                               {"fuse_unk", false},
                               {"byte_fallback", false},
                               {"vocab", vocab},
                               {"merges", merges}}}};
  const std::filesystem::path dir(directory);
  write_json(dir / "tokenizer.json", json);

  ordered_json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"add_bos_token", v.add_bos},
                         {"clean_up_tokenization_spaces", false}};
  config["bos_token"] = v.bos_id ? ordered_json(v.tokens[static_cast<size_t>(*v.bos_id)]) : ordered_json(nullptr);
  config["eos_token"] = v.stop_ids.empty() ? ordered_json(nullptr) : ordered_json(v.tokens[static_cast<size_t>(v.stop_ids[0])]);
  if (!chat_template_text.empty()) config["chat_template"] = chat_template_text;
  write_json(dir / "tokenizer_config.json", config);
}

}  // namespace octet::quantize
