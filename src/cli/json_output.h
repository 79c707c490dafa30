#pragma once
// --json output of the commands. Generated text may hold bytes that are not UTF-8 (a reply cut by
// max_tokens inside a character, a byte token) and paths come from the user: such bytes are written
// as U+FFFD instead of aborting the command (nlohmann::json's default throws on them).
#include <nlohmann/json.hpp>

#include <string>

namespace octet::cli {

inline std::string json_output(const nlohmann::json& value) {
  return value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace octet::cli
