#pragma once
// Reading what an OpenAI-compatible server answers to POST /chat/completions: the completion
// (choices[0].message.content, usage) and, for an error status, the server's own message.
#include "planner/chat_completions_client.h"

#include <string>

namespace octet::planner {

// Throws octet::Error naming the URL and the field that is missing or malformed. usage and its
// counts may be absent or null (0); present, a count must be a non-negative integer.
ChatCompletion parse_chat_completion(const std::string& body, const std::string& url);

// error.message of an OpenAI error body when it is a string, else the body's first 200 bytes.
// Never throws on any body.
std::string error_message_of(const std::string& body);

}  // namespace octet::planner
