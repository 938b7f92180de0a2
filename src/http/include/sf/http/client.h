// An HTTP/1.1 client (a plain socket; Beast's parser only for chunked or close-delimited bodies)
// for upstream fetches: the edge's origin requests and the load generator's viewers. A request's
// timeout is enforced by one lazily re-armed timer per connection, not a timer per operation.
// - Connection: one keep-alive connection to one upstream; requests run one after another (no
//   pipelining). A connection that failed, or that the server closed, is reopened by the next
//   request; a request on a reused connection that the server had closed meanwhile (stale
//   keep-alive) is retried once on a fresh one.
// - Pool: up to N such connections to one upstream; requests wait for a free one, FIFO, bounded.
// - Everything a peer can cause is returned as sf::Result, never thrown: errc::timeout,
//   errc::closed (reset or EOF mid-answer, or close() called), errc::io_error (resolve/connect
//   failed), errc::malformed (not HTTP), errc::message_too_large (header or body above the limit),
//   errc::limit_exceeded (Pool: too many waiting), errc::invalid_argument (CR/LF in the request),
//   errc::conflict (Connection: a request while another runs).
// - Response heads are parsed here, strictly where framing depends on it (one Content-Length,
//   CRLF, no obsolete folding); chunked and close-delimited bodies go through Beast's parser.
//   Bodies are read into one string (Content-Length bodies straight from the socket, no staging
//   buffer) and handed over as one shared immutable block (Bytes::adopt); with an OnHead callback,
//   Content-Length and chunked bodies are handed on while they arrive (SharedBody, ChunkedBody).
// Threads: an object lives on the executor it was built with; construct it, call it and destroy
// it there only. No strands, no locks. Destroying a Connection or Pool closes its sockets; requests
// still running then end with errc::closed (their coroutines keep the internals alive).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "sf/core/bytes.h"
#include "sf/core/result.h"
#include "sf/http/chunked_body.h"
#include "sf/http/shared_body.h"
#include "sf/net/io_pool.h"

namespace sf::http {

struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, names lower-cased
  Bytes body;                                                // the whole body, one block
  std::size_t body_bytes = 0;  // the body's length as received (body.size(), unless discarded)
  std::string header(std::string_view lower_name) const;  // "" if absent
};

// A response body while it arrives, as OnHead receives it: exactly one of the two is set.
struct ArrivingBody {
  std::shared_ptr<SharedBody> sized;     // framed by Content-Length: one block of the final size
  std::shared_ptr<ChunkedBody> chunked;  // chunked: its pieces as they come, its length known at the end
};

// Called, on the connection's executor, when a final response head arrives whose body is framed
// by Content-Length or chunked, before any body byte is awaited: `head` has the status and headers
// (body empty) and `body` receives the bytes as they arrive. A sized body's block becomes the
// ClientResponse's body once complete; a chunked body's pieces are copied once from the read
// buffer as each read delivers them, ended after the last-chunk, and joined into the
// ClientResponse's body at the end. Either fails if the request does (reset, timeout, malformed
// framing, a chunked body above max_body_bytes). While a chunked body is streamed the request's
// timeout applies to each wait for more of it (a stall), not to the whole body, which lasts as
// long as its producer makes it (a live segment). Not called for close-delimited bodies, HEAD, or
// discarded bodies: those callers get the whole response only.
using OnHead = std::function<void(const ClientResponse& head, const ArrivingBody& body)>;

struct ClientLimits {
  std::size_t max_body_bytes = 64 * 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds timeout{10000};  // whole request (after connect) unless a per-call timeout is given
};

// One keep-alive HTTP/1.1 connection to one upstream; requests run one after another (no
// pipelining); reconnects on the next request after the server closed it. Lives on one executor;
// not thread-safe.
class Connection {
 public:
  Connection(boost::asio::any_io_executor ex, net::Endpoint upstream, ClientLimits limits = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // GET (or HEAD) `target` ("/path?query"); extra request headers; timeout 0 = limits.timeout.
  // The Host header is the upstream's host:port. Any status is a response (404 is not an error).
  // `on_head`, if set, sees the head and the body while it arrives (see OnHead).
  boost::asio::awaitable<Result<ClientResponse>> request(std::string method, std::string target,
                                                         std::vector<std::pair<std::string, std::string>> headers = {},
                                                         std::chrono::milliseconds timeout = {}, OnHead on_head = {});
  // Like request(), sending `body` with a Content-Length (POST, PUT, PATCH); the Content-Type goes
  // in `headers`. A request on a stale keep-alive connection is sent again once, body included.
  boost::asio::awaitable<Result<ClientResponse>> request_with_body(
      std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
      std::string body, std::chrono::milliseconds timeout = {});
  // Like request_with_body, the body given as slices (a CMAF chunk's header and its frames' own
  // bytes) sent in one gather write after the head, never copied into a new buffer.
  boost::asio::awaitable<Result<ClientResponse>> request_with_pieces(
      std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
      std::vector<Bytes> body, std::chrono::milliseconds timeout = {});
  // For load generation: bodies of the following requests are read and counted (body_bytes) but
  // not kept, so `body` stays empty and no memory is held for them. Off by default.
  void discard_bodies(bool discard);
  // For load generation: response headers are checked for framing but not stored
  // (ClientResponse::headers stays empty), which saves two strings per header. On by default.
  void keep_headers(bool keep);
  // Closes the socket now; a request in flight ends with errc::closed. The next request reconnects.
  void close();
  bool busy() const;
  bool is_open() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Up to `max_connections` keep-alive connections to one upstream on one executor; a request waits
// for a free connection (FIFO, at most `max_waiting` waiting, else errc::limit_exceeded). The wait
// counts against the request's timeout. Not thread-safe.
class Pool {
 public:
  Pool(boost::asio::any_io_executor ex, net::Endpoint upstream, std::size_t max_connections,
       std::size_t max_waiting = 10000, ClientLimits limits = {});
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  boost::asio::awaitable<Result<ClientResponse>> request(std::string method, std::string target,
                                                         std::vector<std::pair<std::string, std::string>> headers = {},
                                                         std::chrono::milliseconds timeout = {}, OnHead on_head = {});
  // request_with_pieces on a pooled connection (see Connection).
  boost::asio::awaitable<Result<ClientResponse>> request_with_pieces(
      std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
      std::vector<Bytes> body, std::chrono::milliseconds timeout = {});
  // Ends every request in flight (their sockets closed) and every one waiting for a connection,
  // all with errc::closed: for an upstream found dead or hung, whose answers will not come. The
  // pool stays usable; later requests open new connections.
  void abort();
  // Connections whose socket is open now (at most max_connections).
  std::size_t open_connections() const;
  std::size_t waiting() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sf::http
