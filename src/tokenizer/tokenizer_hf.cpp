#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

using nlohmann::json;

std::string escape_for_pcre2(const std::string& literal) {
  std::string pattern;
  for (char c : literal) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80 && !std::isalnum(byte)) pattern.push_back('\\');
    pattern.push_back(c);
  }
  return pattern;
}

// Hugging Face pre-tokenizers as chains of isolating split patterns. Only the kinds that
// byte-level BPE models use are accepted; anything else would silently change the ids.
void add_split_patterns(const json& node, const std::string& source, std::vector<std::string>& patterns) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& step : node.at("pretokenizers")) add_split_patterns(step, source, patterns);
  } else if (type == "ByteLevel") {
    if (node.value("add_prefix_space", false)) {
      fail("{}: ByteLevel pre-tokenizer with add_prefix_space is not supported", source);
    }
    if (node.value("use_regex", true)) {
      const std::vector<std::string> gpt2 = pre_tokenizer_patterns(PreTokenizer::gpt2);
      patterns.insert(patterns.end(), gpt2.begin(), gpt2.end());
    }
  } else if (type == "Digits") {
    patterns.push_back(node.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
  } else if (type == "Split") {
    const std::string behavior = node.value("behavior", "");
    if (behavior != "Isolated" || node.value("invert", false)) {
      fail("{}: Split pre-tokenizer with behavior '{}'{} is not supported (only Isolated)", source, behavior,
           node.value("invert", false) ? " and invert" : "");
    }
    const json& pattern = node.at("pattern");
    if (pattern.contains("Regex")) patterns.push_back(pattern.at("Regex").get<std::string>());
    else patterns.push_back(escape_for_pcre2(pattern.at("String").get<std::string>()));
  } else {
    fail("{}: pre-tokenizer '{}' is not supported", source, type);
  }
}

// A bos the post-processor prepends (Llama 3's TemplateProcessing) means the model expects one.
std::optional<std::string> prepended_special(const json& node) {
  if (node.is_null()) return std::nullopt;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& step : node.at("processors")) {
      if (auto found = prepended_special(step)) return found;
    }
  } else if (type == "TemplateProcessing" && node.contains("single") && !node["single"].empty()) {
    const json& first = node["single"][0];
    if (first.contains("SpecialToken")) return first["SpecialToken"].at("id").get<std::string>();
  }
  return std::nullopt;
}

// tokenizer_config.json writes tokens either as text or as an AddedToken object.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content")) return value["content"].get<std::string>();
  return std::nullopt;
}

std::string config_chat_template(const json& config) {
  if (!config.contains("chat_template")) return "";
  const json& value = config["chat_template"];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {  // named templates: the "default" one is what apply_chat_template uses
    for (const json& entry : value) {
      if (entry.value("name", "") == "default") return entry.value("template", "");
    }
  }
  return "";
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return json::parse(buffer.str());
  } catch (const json::exception& error) {
    fail("{}: not valid JSON: {}", path, error.what());
  }
}

}  // namespace

Tokenizer Tokenizer::from_hf_json(const json& tokenizer_json, const std::string& source, const json* tokenizer_config) {
  try {
    TokenizerSpec spec;
    spec.source = source;
    const json& model = tokenizer_json.at("model");
    if (model.value("type", "BPE") != "BPE") fail("{}: model type '{}' is not BPE", source, model.value("type", ""));
    if (model.value("byte_fallback", false)) {
      fail("{}: BPE with byte_fallback (SentencePiece-style) is not supported; expected byte-level BPE", source);
    }
    if (!tokenizer_json.value("normalizer", json()).is_null()) {
      fail("{}: normalizer '{}' is not supported", source, tokenizer_json["normalizer"].value("type", "?"));
    }

    // Ids come from the vocabulary object and the added tokens; gaps stay empty, unused tokens.
    struct Entry {
      std::string text;
      TokenType type;
    };
    std::vector<std::pair<int64_t, Entry>> entries;
    for (const auto& [text, id] : model.at("vocab").items()) entries.push_back({id.get<int64_t>(), {text, TokenType::normal}});
    for (const json& added : tokenizer_json.value("added_tokens", json::array())) {
      entries.push_back({added.at("id").get<int64_t>(),
                         {added.at("content").get<std::string>(),
                          added.value("special", false) ? TokenType::control : TokenType::user_defined}});
    }
    int64_t max_id = -1;
    for (const auto& [id, entry] : entries) {
      if (id < 0 || id >= (int64_t{1} << 24)) fail("{}: token '{}' has id {}", source, entry.text, id);
      max_id = std::max(max_id, id);
    }
    spec.tokens.assign(max_id + 1, "");
    spec.token_types.assign(max_id + 1, TokenType::unused);
    // Added tokens come last, so they override a plain vocabulary entry with the same id.
    for (const auto& [id, entry] : entries) {
      spec.tokens[id] = entry.text;
      spec.token_types[id] = entry.type;
    }

    for (const json& merge : model.value("merges", json::array())) {
      if (merge.is_array() && merge.size() == 2) {
        spec.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
        continue;
      }
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos) fail("{}: merge '{}' is not 'left right'", source, text);
      spec.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    }
    spec.ignore_merges = model.value("ignore_merges", false);
    spec.split_patterns.clear();
    add_split_patterns(tokenizer_json.value("pre_tokenizer", json()), source, spec.split_patterns);

    auto id_of = [&](const std::string& text) -> std::optional<int32_t> {
      for (size_t id = 0; id < spec.tokens.size(); ++id) {
        if (spec.tokens[id] == text) return static_cast<int32_t>(id);
      }
      return std::nullopt;
    };
    if (model.contains("unk_token") && model["unk_token"].is_string()) spec.unknown_id = id_of(model["unk_token"]);
    if (auto bos = prepended_special(tokenizer_json.value("post_processor", json()))) {
      spec.bos_id = id_of(*bos);
      spec.add_bos = spec.bos_id.has_value();
    }
    if (tokenizer_config != nullptr) {
      if (auto bos = config_token(*tokenizer_config, "bos_token")) spec.bos_id = id_of(*bos);
      if (auto eos = config_token(*tokenizer_config, "eos_token")) spec.eos_id = id_of(*eos);
      if (tokenizer_config->contains("add_bos_token") && (*tokenizer_config)["add_bos_token"].is_boolean()) {
        spec.add_bos = (*tokenizer_config)["add_bos_token"].get<bool>();
      }
      spec.chat_template = config_chat_template(*tokenizer_config);
    }
    return from_spec(std::move(spec));
  } catch (const json::exception& error) {
    fail("{}: unexpected tokenizer.json layout: {}", source, error.what());
  }
}

Tokenizer Tokenizer::from_hf_files(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path) {
  const json tokenizer_json = read_json(tokenizer_json_path);
  std::string config_path = tokenizer_config_path;
  if (config_path.empty()) {
    const auto sibling = std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(sibling)) config_path = sibling.string();
  }
  if (config_path.empty()) return from_hf_json(tokenizer_json, tokenizer_json_path);
  const json config = read_json(config_path);
  return from_hf_json(tokenizer_json, tokenizer_json_path, &config);
}

}  // namespace octet::tokenizer
