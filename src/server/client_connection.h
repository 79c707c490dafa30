#pragma once
// Whether the client of a request being handled has closed its connection, for handlers that do not
// write until they are done (non-streaming answers). cpp-httplib 0.11.4 (Debian 12) gives a handler
// neither its socket nor a closed flag (Request::is_connection_closed came in later versions), so the
// socket is found by the request's two endpoints among this process's descriptors (Linux /proc). The
// connection stays open until the handler returns, so the descriptor cannot be reused meanwhile.
#include <httplib.h>

namespace octet::server {

class ClientConnection {
 public:
  explicit ClientConnection(const httplib::Request& request);
  // True once the peer has shut its side (an orderly close or a reset); false while it is open, and
  // always where the socket could not be found.
  bool closed() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace octet::server
