#include "formats/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace octet::formats {

MappedFile map_file(const std::string& path, const char* what_expected) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  const auto size = static_cast<uint64_t>(info.st_size);
  if (size == 0) {
    ::close(fd);
    fail("{}: empty file, expected {}", path, what_expected);
  }
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (address == MAP_FAILED) fail("{}: cannot mmap {} bytes: {}", path, size, std::strerror(map_error));
  MappedFile file;
  file.mapping = std::shared_ptr<const void>(address, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  file.bytes = std::span<const uint8_t>(static_cast<const uint8_t*>(address), size);
  return file;
}

void release_pages(std::span<const uint8_t> range) {
  if (range.empty()) return;
  static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(range.data()) & ~(page - 1);
  const auto end = (reinterpret_cast<uintptr_t>(range.data()) + range.size() + page - 1) & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advice only: failure is harmless
}

}  // namespace octet::formats
