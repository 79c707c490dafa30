#pragma once
// A whole file mapped read-only (MAP_PRIVATE). The kernel pages it in on demand and may drop clean
// pages under memory pressure, so a checkpoint larger than RAM can still be read tensor by tensor.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace octet::formats {

struct MappedFile {
  std::shared_ptr<const void> mapping;  // unmaps when the last holder goes
  std::span<const uint8_t> bytes;
};

// octet::Error naming path when it cannot be opened, is not a regular file, or is empty
// (what_expected completes "empty file, expected ...").
MappedFile map_file(const std::string& path, const char* what_expected);

// Tells the kernel the pages under range are not needed for now (MADV_DONTNEED): read-only file pages
// are dropped from this process and read again from the file if touched later. Loaders call it after
// converting each tensor, so resident memory does not grow with the checkpoint.
void release_pages(std::span<const uint8_t> range);

}  // namespace octet::formats
