// A response body of unknown length that its producer is still making while it is sent: a
// sequence of shared pieces (`Bytes`, never copied), which the server writes with
// `Transfer-Encoding: chunked` as they appear (an HTTP/1.0 client gets the bytes and the connection
// closes at the end). A live CMAF segment, say, whose chunks are published one by one.
// - Positions are the source's own (a count of pieces, of parts...), 0 at the start of the body;
//   read() says where the next read starts.
// - Consumers (server connections, on their I/O threads) call read() and when_beyond() from any
//   thread; an implementation is thread-safe and wakes waiters from its producer's publish.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "sf/core/bytes.h"

namespace sf::http {

class BodySource {
 public:
  virtual ~BodySource() = default;

  struct Progress {
    std::size_t next = 0;  // where the following read starts
    bool ended = false;    // the body is complete after the pieces just appended
    bool failed = false;   // the body cannot be completed: the connection closes short of its end
  };
  // Appends to `out` the pieces available after position `from` (possibly none).
  virtual Progress read(std::size_t from, std::vector<Bytes>& out) const = 0;
  // Posts `wake` to `ex` once read(from) would give more, the end or a failure (at once if it
  // would now). Every call is woken exactly once.
  virtual void when_beyond(std::size_t from, const boost::asio::any_io_executor& ex,
                           std::function<void()> wake) const = 0;
};

}  // namespace sf::http
