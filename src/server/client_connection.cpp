#include "server/client_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <string>

namespace octet::server {
namespace {

// The address and port of a socket's end, from getsockname or getpeername.
bool endpoint_of(int fd, bool peer, std::string& address, int& port) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? getpeername(fd, addr, &length) : getsockname(fd, addr, &length)) != 0) return false;
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  address = text;
  return true;
}

}  // namespace

ClientConnection::ClientConnection(const httplib::Request& request) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    const std::string name = entry.path().filename().string();
    int fd = -1;
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc()) continue;
    std::string local_address, peer_address;
    int local_port = -1, peer_port = -1;
    if (!endpoint_of(fd, false, local_address, local_port) || local_port != request.local_port) continue;
    if (!endpoint_of(fd, true, peer_address, peer_port) || peer_port != request.remote_port ||
        peer_address != request.remote_addr)
      continue;
    fd_ = fd;
    return;
  }
}

bool ClientConnection::closed() const {
  if (fd_ < 0) return false;
  char byte = 0;
  const ssize_t got = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (got == 0) return true;  // end of stream: the client closed
  if (got > 0) return false;  // a pipelined request waits: still connected
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace octet::server
