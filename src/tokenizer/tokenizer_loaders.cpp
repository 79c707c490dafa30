// Building a Tokenizer from the files models ship: GGUF metadata and Hugging Face tokenizer.json.
#include "common/error.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

namespace octet::tokenizer {
namespace {

// Ids of the tokens that end a turn or the text in the families we know.
void add_named_stops(const std::vector<std::string>& tokens, std::vector<int32_t>& stops) {
  for (const char* name : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<|eom_id|>"}) {
    for (size_t id = 0; id < tokens.size(); ++id)
      if (tokens[id] == name && std::find(stops.begin(), stops.end(), static_cast<int32_t>(id)) == stops.end())
        stops.push_back(static_cast<int32_t>(id));
  }
}

ChatTemplate::Kind family_template(const std::vector<std::string>& tokens) {
  for (const auto& t : tokens)
    if (t == "<|start_header_id|>") return ChatTemplate::Kind::llama3;
  return ChatTemplate::Kind::chatml;
}

std::pair<std::string, std::string> split_merge(const std::string& merge, const std::string& source, size_t rank) {
  const auto space = merge.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 == merge.size())
    fail("{}: merge #{} '{}' is not two symbols separated by a space", source, rank, merge);
  return {merge.substr(0, space), merge.substr(space + 1)};
}

// A field of a JSON object that must be a string (or absent / null: nullopt); errors name the field.
std::optional<std::string> optional_string(const nlohmann::json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail("{}: {} must be a string, found {}", where, key, it->type_name());
  return it->get<std::string>();
}

bool optional_bool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}: {} must be true or false, found {}", where, key, it->type_name());
  return it->get<bool>();
}

// A token's text where tokenizer_config.json names one: a string or an AddedToken object's content.
std::string token_text(const nlohmann::json& token, const std::string& where) {
  if (token.is_string()) return token.get<std::string>();
  if (token.is_object()) return optional_string(token, "content", where).value_or("");
  return "";
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
  const std::string model = file.get_string("tokenizer.ggml.model").value_or("");
  if (model != "gpt2")
    fail("{}: tokenizer.ggml.model is '{}'; this tokenizer reads byte-level BPE ('gpt2') vocabularies", file.path(), model);
  Vocabulary v;
  v.source = file.path();
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) fail("{}: tokenizer.ggml.tokens is missing", file.path());
  v.tokens = std::move(*tokens);
  if (auto merges = file.get_string_array("tokenizer.ggml.merges")) {
    for (size_t i = 0; i < merges->size(); ++i) v.merges.push_back(split_merge((*merges)[i], file.path(), i));
  }
  v.special.assign(v.tokens.size(), false);
  if (auto types = file.get_int_array("tokenizer.ggml.token_type")) {
    if (types->size() != v.tokens.size())
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", file.path(), types->size(), v.tokens.size());
    for (size_t i = 0; i < types->size(); ++i) v.special[i] = (*types)[i] == 3 || (*types)[i] == 4;  // control, user-defined
  }
  const std::string pre = file.get_string("tokenizer.ggml.pre").value_or("default");
  if (pre == "smollm") v.pre_tokenizer = PreTokenizerKind::smollm;
  else if (pre == "llama-bpe" || pre == "llama3") v.pre_tokenizer = PreTokenizerKind::llama3;
  else if (pre == "gpt-2" || pre == "default") v.pre_tokenizer = PreTokenizerKind::gpt2;
  else fail("{}: pre-tokenizer '{}' is not supported (supported: smollm, llama-bpe, gpt-2)", file.path(), pre);
  if (auto bos = file.get_int("tokenizer.ggml.bos_token_id")) v.bos_id = static_cast<int32_t>(*bos);
  v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(false);
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = file.get_int(key)) v.stop_ids.push_back(static_cast<int32_t>(*id));
  add_named_stops(v.tokens, v.stop_ids);
  v.chat_template = ChatTemplate::from_template_text(file.get_string("tokenizer.chat_template").value_or(""),
                                                     family_template(v.tokens), file.path());
  return Tokenizer(std::move(v));
}

Tokenizer Tokenizer::from_hf_json(const nlohmann::json& j, const std::string& source, const nlohmann::json* config) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("{}: no 'model' object", source);
  const auto& model = j["model"];
  if (const auto type = model.find("type"); type != model.end() && !(type->is_string() && *type == "BPE"))
    fail("{}: model.type is {}, expected \"BPE\"", source, type->dump());
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("{}: model.vocab must be an object", source);
  Vocabulary v;
  v.source = source;
  auto place = [&](int64_t id, const std::string& text, bool special) {
    if (id < 0 || id > (1 << 24)) fail("{}: token id {} for '{}' is out of range", source, id, text);
    if (static_cast<size_t>(id) >= v.tokens.size()) {
      v.tokens.resize(static_cast<size_t>(id) + 1);
      v.special.resize(static_cast<size_t>(id) + 1, false);
    }
    v.tokens[id] = text;
    v.special[id] = special;
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) fail("{}: model.vocab['{}'] is not an integer id", source, text);
    place(id.get<int64_t>(), text, false);
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& added : j["added_tokens"]) {
      if (!added.is_object() || !added.contains("id") || !added.contains("content"))
        fail("{}: an added token lacks id or content", source);
      if (!added["id"].is_number_integer()) fail("{}: added token id {} is not an integer", source, added["id"].dump());
      if (!added["content"].is_string()) fail("{}: added token {}'s content is not a string", source, added["id"].dump());
      place(added["id"].get<int64_t>(), added["content"].get<std::string>(),
            optional_bool(added, "special", false, source + ": added token " + added["id"].dump()));
    }
  if (model.contains("merges") && model["merges"].is_array()) {
    size_t rank = 0;
    for (const auto& m : model["merges"]) {
      if (m.is_string()) v.merges.push_back(split_merge(m.get<std::string>(), source, rank));
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      else fail("{}: merge #{} is neither \"a b\" nor [a, b]", source, rank);
      ++rank;
    }
  }
  const std::string pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "";
  if (pre.find("(?i:'s|'t") != std::string::npos) v.pre_tokenizer = PreTokenizerKind::llama3;
  else if (pre.find("\"Digits\"") != std::string::npos) v.pre_tokenizer = PreTokenizerKind::smollm;
  else v.pre_tokenizer = PreTokenizerKind::gpt2;

  auto id_of = [&](const std::string& text) -> std::optional<int32_t> {
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (v.tokens[i] == text) return static_cast<int32_t>(i);
    return std::nullopt;
  };
  std::string jinja;
  if (config) {
    const std::string where = "tokenizer_config.json beside " + source;
    if (!config->is_object()) fail("{}: expected a JSON object", where);
    if (config->contains("bos_token")) v.bos_id = id_of(token_text((*config)["bos_token"], where + ": bos_token"));
    if (config->contains("eos_token"))
      if (auto eos = id_of(token_text((*config)["eos_token"], where + ": eos_token"))) v.stop_ids.push_back(*eos);
    if (config->contains("chat_template")) {
      const auto& t = (*config)["chat_template"];
      if (t.is_string()) jinja = t.get<std::string>();
      else if (t.is_array())
        for (const auto& named : t)
          if (named.is_object() && optional_string(named, "name", where + ": chat_template[]") == "default")
            jinja = optional_string(named, "template", where + ": chat_template[]").value_or("");
    }
    v.add_bos = optional_bool(*config, "add_bos_token", false, where);
  }
  // Llama 3 adds <|begin_of_text|> through the post-processor rather than add_bos_token.
  if (j.contains("post_processor") && v.bos_id && j["post_processor"].dump().find(v.tokens[*v.bos_id]) != std::string::npos)
    v.add_bos = true;
  add_named_stops(v.tokens, v.stop_ids);
  v.chat_template = ChatTemplate::from_template_text(jinja, family_template(v.tokens), source);
  return Tokenizer(std::move(v));
}

Tokenizer Tokenizer::from_hf_files(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path) {
  nlohmann::json tokenizer = formats::read_json_file(tokenizer_json_path);
  if (tokenizer_config_path.empty()) return from_hf_json(tokenizer, tokenizer_json_path);
  nlohmann::json config = formats::read_json_file(tokenizer_config_path);
  return from_hf_json(tokenizer, tokenizer_json_path, &config);
}

}  // namespace octet::tokenizer
