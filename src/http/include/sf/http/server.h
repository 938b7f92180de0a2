// An HTTP/1.1 server (Boost.Beast) for media, control and admin routes.
// - Handlers run on the I/O thread that owns the connection and must not block.
// - Bodies are a small owned string plus shared immutable pieces (`Bytes`), written with one
//   gather write: media bytes are never concatenated or copied on the way out. A body still
//   arriving (`SharedBody`) is written as it arrives, from the one shared block; one of unknown
//   length (`BodySource`) goes out with chunked transfer coding as its producer publishes it.
// - A held route answers later, from any thread, through its Responder (blocking playlist
//   reloads); if nothing answers within the route's hold time, the fallback is sent instead.
// - Range (a single range), HEAD, CORS and keep-alive are handled here for every route.
// - Bounded: connections, header and body sizes, header and idle timeouts.
// Construct, add routes and start() on the main thread; stop() from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "sf/core/bytes.h"
#include "sf/http/body_source.h"
#include "sf/http/shared_body.h"
#include "sf/net/io_pool.h"

namespace sf::http {

struct Request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  std::string body;
  std::string head;                       // the header fields as received ("Name: value\r\n"...), read by header()
  std::string remote;                     // peer address
  boost::asio::any_io_executor executor;  // the connection's I/O context (work started for it)
  unsigned version = 11;                  // as Beast counts: 10 = HTTP/1.0, 11 = HTTP/1.1
  // The value of a query parameter (undecoded), or "" if absent.
  std::string param(std::string_view name) const;
  bool has_param(std::string_view name) const;
  // A header's value by case-insensitive name, or "" (a scan of `head`: requests carry few).
  std::string header(std::string_view name) const;
  // The same as views into `query` / `head` (no allocation; valid while the request is).
  std::string_view param_view(std::string_view name) const;
  std::string_view header_view(std::string_view name) const;
};

// An immutable file (a sealed memfd holding a large object, say) that responses send with
// sendfile(2): the kernel takes its pages instead of copying the bytes from user memory per
// request. Owns the descriptor (closed with the last reference).
struct FileBody {
  FileBody(int fd, std::size_t size) : fd(fd), size(size) {}
  ~FileBody();
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  const int fd;
  const std::size_t size;
  // A sealed memfd holding a copy of `pieces`, made once per object and then sent by every answer
  // that carries it; null if the copy cannot be made (no memfd, no memory): send the bytes instead.
  static std::shared_ptr<const FileBody> sealed_copy(std::span<const Bytes> pieces);
  // A copy of `pieces` in an unnamed file (O_TMPFILE) in `dir`, held through a read-only
  // descriptor (the writable one is closed once filled, and the file has no name, so nothing can
  // change it). Sent with sendfile like a memfd, but where `dir` is a disk file system (ext4, xfs)
  // the kernel reads it through the generic page cache, which costs less per request than shmem's
  // page-by-page lookups; the pages are written back to the disk once. Null if it cannot be made
  // (no such directory, no O_TMPFILE there, disk full): use sealed_copy instead.
  static std::shared_ptr<const FileBody> unnamed_copy(std::span<const Bytes> pieces, const std::string& dir);
  // Where unnamed copies go by default: $TMPDIR, else /var/tmp.
  static std::string spare_dir();
  // unnamed_copy in spare_dir(), else sealed_copy; null if neither can be made.
  static std::shared_ptr<const FileBody> spare_copy(std::span<const Bytes> pieces);
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;           // written first
  std::vector<Bytes> pieces;  // then these, as they are
  // Or instead of `body` and `pieces`: a body still arriving, written as its bytes come (its
  // size is known, so the head goes out at once with its Content-Length). If it fails, the
  // connection is closed after the bytes sent so far.
  std::shared_ptr<const SharedBody> stream;
  // Or instead of `body` and `pieces`: the whole of this file, sent with sendfile(2).
  std::shared_ptr<const FileBody> file;
  // Or instead of `body` and `pieces`: a body of unknown length still being made, sent with
  // Transfer-Encoding: chunked as its pieces appear (Range is ignored: the answer is the whole body).
  std::shared_ptr<const BodySource> source;
  std::vector<std::pair<std::string, std::string>> headers;
  // Called with the body bytes written to the client as they leave (the head and chunked framing
  // not counted): once for a body written in one go, after each write for one still arriving. The
  // sum is what the client was sent: nothing for HEAD, the slice for a Range, less than the body if
  // the client left. Runs on the connection's I/O thread and must not block.
  std::function<void(std::size_t)> on_sent;

  std::size_t size() const;
  static Response text(int status, std::string body);
  static Response json(int status, std::string body);
};

// Handlers may take the request by reference and move its body out (no copy of uploads).
using Handler = std::function<Response(Request&)>;

// Answers a held request exactly once, from any thread. Later calls, or calls after the hold
// time passed or the client left, are ignored. Cheap to copy.
class Responder {
 public:
  struct State;
  explicit Responder(std::shared_ptr<State> s) : state_(std::move(s)) {}
  void operator()(Response r) const;
  bool answered() const;

 private:
  friend class ResponderBatch;
  std::shared_ptr<State> state_;
};

// Answers many held requests at once (coalesced waiters) with one post per I/O thread instead of
// one per request: each thread then finds all its answers queued together, so every response head
// goes out before any large body starts filling sockets. First answer wins, as with Responder.
class ResponderBatch {
 public:
  void add(const Responder& r, Response response);
  // Hands the answers to their connections' threads; the batch is empty afterwards.
  void send();

 private:
  std::vector<std::pair<std::shared_ptr<Responder::State>, Response>> items_;
};
using HeldHandler = std::function<void(const Request&, Responder)>;

// Takes a request body piece by piece as it arrives (long-running chunked uploads). on_data()
// returns false to stop reading (the connection then closes after finish()'s response).
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual bool on_data(ByteView piece) = 0;
  virtual Response finish() = 0;  // the body ended (or on_data refused): the response to send
};
// Decides from the request head alone: a Response (refusal) or a sink for the body.
using StreamingHandler = std::function<std::variant<Response, std::unique_ptr<BodySink>>(const Request&)>;

struct ServerLimits {
  std::size_t max_connections = 10000;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds idle_timeout{30000};
  bool cors = false;  // Access-Control-Allow-Origin: * and OPTIONS preflight, for browser players
};

class Server {
 public:
  Server(net::IoPool& pool, const net::Endpoint& at, ServerLimits limits = {});
  ~Server();

  // Exact-path route; the first matching route answers. GET routes also answer HEAD.
  void route(std::string method, std::string path, Handler h);
  // Prefix route, for paths with parameters ("/live/").
  void route_prefix(std::string method, std::string prefix, Handler h);
  // A prefix route that may hold the request up to `hold` before `fallback` is sent.
  void route_held(std::string method, std::string prefix, std::chrono::milliseconds hold, Response fallback,
                  HeldHandler h);

  // A prefix route whose body is streamed to a BodySink instead of buffered; body size unbounded
  // unless body_limit() bounds it, and each read still has the idle timeout.
  void route_streaming(std::string method, std::string prefix, StreamingHandler h);
  // Requests under `prefix` may carry bodies up to `bytes` (others: ServerLimits::max_body_bytes).
  // The limit is chosen after the header is read, before any body byte is buffered.
  void body_limit(std::string prefix, std::size_t bytes);
  // Called (on the connection's I/O thread) for each request refused before any route saw it:
  // 400 malformed or ambiguous framing, 413 body too large, 431 header too large (each answered,
  // then the connection closed), 408 a head (or buffered body) that stopped arriving before its
  // timeout (the connection closed without an answer). Set before start().
  using RefusedHook = std::function<void(int status, const std::string& remote)>;
  void on_refused(RefusedHook hook);

  void start();
  // Stops accepting and closes open connections.
  void stop();
  std::uint16_t port() const;
  std::size_t active_connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::http
