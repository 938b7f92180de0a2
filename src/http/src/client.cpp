#include "sf/http/client.h"

#include "sf/net/deadlines.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <deque>
#include <optional>

namespace sf::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

std::string ClientResponse::header(std::string_view lower_name) const {
  for (auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

namespace {

// What a transport or parse failure means to the caller (client.h lists the codes).
std::error_code map_error(const error_code& ec) {
  if (ec == beast::error::timeout) return make_error_code(errc::timeout);
  if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
    return make_error_code(errc::message_too_large);
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return make_error_code(errc::closed);
  if (&ec.category() == &bhttp::make_error_code(bhttp::error::bad_version).category())
    return make_error_code(errc::malformed);
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_aborted ||
      ec == asio::error::bad_descriptor)
    return make_error_code(errc::closed);
  return make_error_code(errc::io_error);
}

// The server closed an idle keep-alive connection before our request reached it: safe to retry
// once on a fresh connection (GET and HEAD are idempotent, and nothing of an answer was read).
bool stale_connection(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

struct Connection::Impl final : net::Watched {
  Impl(asio::any_io_executor ex, net::Endpoint up, ClientLimits l)
      : executor(std::move(ex)),
        deadlines(net::Deadlines::of(executor)),
        upstream(std::move(up)),
        limits(l),
        // The staging buffer holds the response head and whatever body bytes came with it; the
        // rest of a Content-Length body is read straight into its string.
        buffer(std::max<std::size_t>(l.max_header_bytes, 1024) + 4096) {
    bool v6 = upstream.host.find(':') != std::string::npos;
    host_header = (v6 ? "[" + upstream.host + "]" : upstream.host) + ":" + std::to_string(upstream.port);
  }

  bool open() const { return stream && stream->is_open(); }

  void close() {
    if (!stream) return;
    error_code ec;
    stream->shutdown(tcp::socket::shutdown_both, ec);
    stream->close(ec);
  }

  // The deadline of the request in flight, checked by the context's coarse sweep (net::Deadlines)
  // rather than by a timer armed and cancelled per read and write (what beast::tcp_stream costs):
  // a request only registers and unregisters the connection.
  void watch(Clock::time_point d) {
    timed_out = false;
    deadlines.watch(*this, d);
  }
  void unwatch() { deadlines.unwatch(*this); }
  void expired() override {
    timed_out = true;
    close();  // the pending operation fails; the request reports errc::timeout
  }

  // A failed operation's meaning: a timeout if the watchdog closed the socket.
  std::error_code error(const error_code& ec) const {
    return timed_out ? make_error_code(errc::timeout) : map_error(ec);
  }

  asio::any_io_executor executor;
  net::Deadlines& deadlines;
  net::Endpoint upstream;
  ClientLimits limits;
  std::string host_header;
  std::optional<tcp::socket> stream;
  bool timed_out = false;
  beast::flat_buffer buffer;
  std::string wire;                        // the request being sent
  std::vector<Bytes> pieces;               // its body when given as slices (gather write)
  std::vector<asio::const_buffer> gather;  // reused: wire + pieces
  bool busy = false;
  bool discard = false;
  bool keep_headers = true;
  OnHead on_head;                       // of the request in flight
  std::chrono::milliseconds budget{0};  // of the request in flight: a streamed chunked body's stall limit
};

namespace {

struct BusyGuard {
  explicit BusyGuard(bool& b) : busy(b) { busy = true; }
  ~BusyGuard() { busy = false; }
  bool& busy;
};

asio::awaitable<std::error_code> connect(Connection::Impl& c) {
  error_code ec;
  std::vector<tcp::endpoint> endpoints;
  auto address = asio::ip::make_address(c.upstream.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, c.upstream.port);
  } else {
    tcp::resolver resolver(c.executor);
    auto results = co_await resolver.async_resolve(c.upstream.host, std::to_string(c.upstream.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return make_error_code(errc::io_error);
    for (auto& r : results) endpoints.push_back(r.endpoint());
  }
  c.stream.emplace(c.executor);
  c.buffer.clear();
  c.watch(Clock::now() + c.limits.connect_timeout);
  co_await asio::async_connect(*c.stream, endpoints, asio::redirect_error(asio::use_awaitable, ec));
  c.unwatch();
  if (ec) {
    bool timeout = c.timed_out;
    c.close();
    co_return timeout ? make_error_code(errc::timeout) : make_error_code(errc::io_error);
  }
  c.stream->set_option(tcp::no_delay(true), ec);
  c.stream->non_blocking(true, ec);  // requests are first written directly (see exchange)
  co_return std::error_code{};
}

// The parts of a response head (RFC 9112 §4, §5, §6.3) that decide how the body is framed.
struct ResponseHead {
  int status = 0;
  bool http11 = true;
  bool keep_alive = true;
  std::optional<std::uint64_t> content_length;
  bool chunked = false;
  bool transfer_encoding = false;
};

bool token_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
}

char lower(char ch) {
  return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch + 32) : ch;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Calls f(token) for each comma-separated token of a list header value, trimmed.
template <class F>
void for_each_token(std::string_view v, F&& f) {
  while (!v.empty()) {
    auto comma = v.find(',');
    auto t = v.substr(0, comma);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (!t.empty()) f(t);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

// Parses a complete response head (status line, fields, blank line); header names are stored
// lower-cased in `out`. Strict where framing depends on it: CRLF line ends, no obsolete line
// folding, one Content-Length value, digits only.
Result<ResponseHead> parse_head(std::string_view head, std::vector<std::pair<std::string, std::string>>* out) {
  ResponseHead h;
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return fail(errc::malformed);
  std::string_view line = head.substr(0, eol);
  // HTTP-version SP 3DIGIT SP [reason]
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' '))
    return fail(errc::malformed);
  h.http11 = line[7] == '1';
  h.keep_alive = h.http11;
  for (int i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return fail(errc::malformed);
    h.status = h.status * 10 + (line[i] - '0');
  }
  if (h.status < 100) return fail(errc::malformed);
  head.remove_prefix(eol + 2);
  if (out) {
    std::size_t count = 0;
    for (auto rest = head; rest.size() > 2; rest.remove_prefix(rest.find("\r\n") + 2)) ++count;
    out->reserve(count);
  }
  while (!head.starts_with("\r\n")) {
    eol = head.find("\r\n");
    if (eol == std::string_view::npos) return fail(errc::malformed);
    line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return fail(errc::malformed);  // also obs-fold
    auto name = line.substr(0, colon);
    for (char ch : name)
      if (!token_char(ch)) return fail(errc::malformed);
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (char ch : value)
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return fail(errc::malformed);
    if (iequals(name, "content-length")) {
      std::uint64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty()) return fail(errc::malformed);
      if (h.content_length && *h.content_length != n) return fail(errc::malformed);
      h.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      h.transfer_encoding = true;
      h.chunked = false;
      for_each_token(value, [&](std::string_view t) { h.chunked = iequals(t, "chunked"); });  // the last coding
    } else if (iequals(name, "connection")) {
      for_each_token(value, [&](std::string_view t) {
        if (iequals(t, "close"))
          h.keep_alive = false;
        else if (iequals(t, "keep-alive") && !h.http11)
          h.keep_alive = true;
      });
    }
    if (!out) continue;
    std::string lowered(name);
    for (auto& ch : lowered) ch = lower(ch);
    out->emplace_back(std::move(lowered), std::string(value));
  }
  return h;
}

// Reads until the buffer holds a whole response head; returns its length (blank line included).
// `stale` is set when the connection ended before any byte of an answer.
asio::awaitable<Result<std::size_t>> read_head(Connection::Impl& c, Clock::time_point deadline, bool& stale) {
  std::size_t scanned = 0;
  for (;;) {
    std::string_view data(static_cast<const char*>(c.buffer.data().data()), c.buffer.size());
    auto end = data.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
    if (end != std::string_view::npos) {
      if (end + 4 > c.limits.max_header_bytes) co_return fail(errc::message_too_large);
      co_return end + 4;
    }
    if (data.size() >= c.limits.max_header_bytes) co_return fail(errc::message_too_large);
    scanned = data.size();
    error_code ec;
    std::size_t n = co_await c.stream->async_read_some(c.buffer.prepare(beast::read_size(c.buffer, 65536)),
                                                       asio::redirect_error(asio::use_awaitable, ec));
    c.buffer.commit(n);
    if (ec) {
      stale = !c.timed_out && stale_connection(ec) && c.buffer.size() == 0;
      co_return std::unexpected(c.error(ec));
    }
  }
}

// One exchange on an open connection. `stale` is set when it failed in a way that means the
// server had already closed the connection (the caller may retry on a fresh one).
asio::awaitable<Result<ClientResponse>> exchange(Connection::Impl& c, bool head_request, Clock::time_point deadline,
                                                 bool& stale) {
  error_code ec;
  auto& stream = *c.stream;
  c.watch(deadline);
  if (!c.pieces.empty()) {
    // Head and body slices in one gather write: the body's bytes are never copied.
    c.gather.clear();
    c.gather.push_back(asio::buffer(c.wire));
    for (auto& p : c.pieces)
      if (p.size()) c.gather.push_back(asio::buffer(p.data(), p.size()));
    co_await asio::async_write(stream, c.gather, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    // The request is small: written directly, the reactor only if the socket does not take it all.
    std::size_t sent = stream.write_some(asio::buffer(c.wire), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
    if (!ec && sent < c.wire.size())
      co_await asio::async_write(stream, asio::buffer(c.wire.data() + sent, c.wire.size() - sent),
                                 asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) {
    stale = !c.timed_out && stale_connection(ec);
    auto e = c.error(ec);
    c.close();
    co_return std::unexpected(e);
  }

  ClientResponse out;
  Result<ResponseHead> head;
  std::size_t head_size = 0;
  if (c.buffer.capacity() == 0) c.buffer.reserve(std::min<std::size_t>(4096, c.buffer.max_size()));
  for (int interim = 0;; ++interim) {
    auto size = co_await read_head(c, deadline, stale);
    if (!size) {
      c.close();
      co_return std::unexpected(size.error());
    }
    head_size = *size;
    out.headers.clear();
    head = parse_head(std::string_view(static_cast<const char*>(c.buffer.data().data()), head_size),
                      c.keep_headers ? &out.headers : nullptr);
    if (!head || interim > 4) {
      c.close();
      co_return fail(errc::malformed);
    }
    if (head->status >= 200 || head->status == 101) break;
    c.buffer.consume(head_size);  // RFC 9110 15.2: an interim answer precedes the final one
  }
  out.status = head->status;
  bool keep_alive = head->keep_alive;
  std::string body;
  std::optional<Bytes> joined;  // a chunked body handed on while it arrived: its pieces in one block
  bool no_body = head_request || out.status == 204 || out.status == 304 || out.status < 200;
  if (no_body || (!head->transfer_encoding && head->content_length)) {
    c.buffer.consume(head_size);
    std::size_t len = no_body ? 0 : static_cast<std::size_t>(*head->content_length);
    if (!no_body && *head->content_length > c.limits.max_body_bytes) {
      c.close();
      co_return fail(errc::message_too_large);
    }
    out.body_bytes = len;
    if (c.discard) {
      // Dropped in the kernel: recv(MSG_TRUNC) on TCP discards the bytes without copying them to
      // user memory (tcp(7)); the scratch block is never written. One load generator core stands
      // in for thousands of players, each of which would copy its bytes on its own device: the
      // copy of all of them on one core made the client, not the server under test, the limit
      // when every viewer's part arrives at once (blocking reloads answered together).
      thread_local std::array<char, 256 * 1024> scratch;
      std::size_t left = len - std::min(c.buffer.size(), len);
      c.buffer.consume(len - left);
      while (left > 0) {
        std::size_t n = co_await stream.async_receive(asio::buffer(scratch.data(), std::min(left, scratch.size())),
                                                      MSG_TRUNC, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          auto e = c.error(ec);
          c.close();
          co_return std::unexpected(e);
        }
        left -= n;
      }
      len = 0;
    }
    if (c.on_head && len > 0) {
      // Streamed: the body goes into one shared block of its final size, published as it
      // arrives, so the caller can hand it on before the upstream finishes.
      auto shared = std::make_shared<SharedBody>(len);
      std::size_t have = std::min(c.buffer.size(), len);
      if (have) std::memcpy(shared->write_position(), c.buffer.data().data(), have);
      c.buffer.consume(have);
      shared->advance(have);
      c.on_head(out, ArrivingBody{shared, nullptr});
      while (shared->left() > 0) {
        std::size_t n = co_await stream.async_read_some(asio::buffer(shared->write_position(), shared->left()),
                                                        asio::redirect_error(asio::use_awaitable, ec));
        shared->advance(n);
        if (ec) {
          shared->fail();
          auto e = c.error(ec);
          c.close();
          co_return std::unexpected(e);
        }
      }
      c.unwatch();
      if (!keep_alive || c.buffer.size() != 0) {
        c.close();
        c.buffer.clear();
      }
      out.body = shared->bytes();
      co_return out;
    }
    // The body goes straight from the socket into its string: no staging copy beyond the bytes
    // that arrived with the head. Every byte is written below before anyone reads it.
    // The operation returns `len` itself: libstdc++ 12 passes the grown capacity as the count when a
    // short string leaves its inline buffer (16..29 bytes came back padded with NULs).
    body.resize_and_overwrite(len, [len](char*, std::size_t) { return len; });
    std::size_t have = std::min(c.buffer.size(), len);
    if (have) std::memcpy(body.data(), c.buffer.data().data(), have);
    c.buffer.consume(have);
    if (have < len) {
      co_await asio::async_read(stream, asio::buffer(body.data() + have, len - have),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        auto e = c.error(ec);
        c.close();
        co_return std::unexpected(e);
      }
    }
  } else {
    // Chunked, or delimited by the end of the connection (rare from our upstreams): Beast's parser
    // does the framing, starting from the head still in the buffer.
    bhttp::response_parser<bhttp::string_body> full;
    full.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(c.limits.max_header_bytes, UINT32_MAX)));
    full.body_limit(c.limits.max_body_bytes);
    full.eager(true);
    std::size_t used = full.put(asio::buffer(c.buffer.data().data(), head_size), ec);
    if (ec || used != head_size) {
      c.close();
      co_return fail(errc::malformed);
    }
    c.buffer.consume(used);
    if (c.on_head && head->chunked && !c.discard && !full.is_done()) {
      // Streamed: each read's chunk data becomes one shared piece (copied once out of the read
      // buffer), published as it arrives, so the caller can hand the body on before it ends.
      auto chunked = std::make_shared<ChunkedBody>();
      std::size_t limit = c.limits.max_body_bytes;
      // The body lasts as long as its producer makes it (a live segment): the budget bounds each
      // wait for more of it, so only a stall ends it. (Beast's read_some goes on reading until a
      // parse needs nothing more, possibly the whole body: the deadline moves with each piece.)
      auto on_data = [&c, &chunked, limit](std::uint64_t, std::string_view data, error_code& data_ec) -> std::size_t {
        if (chunked->size() + data.size() > limit) {
          data_ec = bhttp::error::body_limit;
          return 0;
        }
        chunked->append(Bytes::copy_of(as_bytes(data)));
        c.watch(Clock::now() + c.budget);
        return data.size();
      };
      full.on_chunk_body(on_data);  // Beast keeps a reference: on_data lives in this frame
      c.on_head(out, ArrivingBody{nullptr, chunked});
      c.watch(Clock::now() + c.budget);
      while (!full.is_done()) {
        co_await bhttp::async_read_some(stream, c.buffer, full, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          chunked->fail();
          auto e = c.error(ec);
          c.close();
          co_return std::unexpected(e);
        }
      }
      chunked->end();
      joined = chunked->joined();
      out.body_bytes = joined->size();
    } else {
      if (!full.is_done()) {
        co_await bhttp::async_read(stream, c.buffer, full, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          auto e = c.error(ec);
          c.close();
          co_return std::unexpected(e);
        }
      }
      body = std::move(full.get().body());
      out.body_bytes = body.size();
      if (c.discard) body = {};
    }
    keep_alive = keep_alive && head->chunked;
  }
  c.unwatch();
  // Bytes beyond the answer mean the server does not frame as we think (we never pipeline).
  if (!keep_alive || c.buffer.size() != 0) {
    c.close();
    c.buffer.clear();
  }
  out.body = joined ? std::move(*joined) : Bytes::adopt(std::move(body));
  co_return out;
}

void request_head(Connection::Impl& c, const std::string& method, const std::string& target,
                  const std::vector<std::pair<std::string, std::string>>& headers, const std::string* body) {
  auto& out = c.wire;  // reused: no allocation once it grew to the usual request size
  out.clear();
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(c.host_header).append("\r\n");
  for (auto& [k, v] : headers) out.append(k).append(": ").append(v).append("\r\n");
  if (body) out.append("Content-Length: ").append(std::to_string(body->size())).append("\r\n");
  if (!body && !c.pieces.empty()) {
    std::size_t n = 0;
    for (auto& p : c.pieces) n += p.size();
    out.append("Content-Length: ").append(std::to_string(n)).append("\r\n");
  }
  out.append("\r\n");
  if (body) out.append(*body);
}

asio::awaitable<Result<ClientResponse>> run_request(std::shared_ptr<Connection::Impl> self, std::string method,
                                                    std::string target,
                                                    std::vector<std::pair<std::string, std::string>> headers,
                                                    std::chrono::milliseconds timeout,
                                                    std::optional<std::string> body = std::nullopt, OnHead on_head = {},
                                                    std::vector<Bytes> pieces = {}) {
  if (self->busy) co_return fail(errc::conflict);
  if (method.empty() || has_crlf(method) || has_crlf(target) || target.find(' ') != std::string::npos)
    co_return fail(errc::invalid_argument);
  for (auto& [k, v] : headers)
    if (k.empty() || has_crlf(k) || has_crlf(v)) co_return fail(errc::invalid_argument);
  BusyGuard guard(self->busy);
  self->on_head = std::move(on_head);
  self->pieces = std::move(pieces);
  struct ClearOnHead {
    ~ClearOnHead() {
      c.on_head = nullptr;
      c.pieces.clear();  // the body's blocks are not held past the request
    }
    Connection::Impl& c;
  } clear_on_head{*self};
  auto budget = timeout.count() > 0 ? timeout : self->limits.timeout;
  self->budget = budget;
  request_head(*self, method, target, headers, body ? &*body : nullptr);
  bool head_request = method == "HEAD";
  std::optional<Clock::time_point> deadline;
  for (int attempt = 0;; ++attempt) {
    bool fresh = false;
    if (!self->open()) {
      if (auto ec = co_await connect(*self)) co_return std::unexpected(ec);
      fresh = true;
    }
    if (!deadline) deadline = Clock::now() + budget;  // the budget starts once connected
    bool stale = false;
    auto r = co_await exchange(*self, head_request, *deadline, stale);
    self->unwatch();
    if (r || fresh || !stale || attempt > 0 || Clock::now() >= *deadline) co_return r;
  }
}

}  // namespace

Connection::Connection(asio::any_io_executor ex, net::Endpoint upstream, ClientLimits limits)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(upstream), limits)) {}

Connection::~Connection() {
  impl_->close();
}

asio::awaitable<Result<ClientResponse>> Connection::request(std::string method, std::string target,
                                                            std::vector<std::pair<std::string, std::string>> headers,
                                                            std::chrono::milliseconds timeout, OnHead on_head) {
  return run_request(impl_, std::move(method), std::move(target), std::move(headers), timeout, std::nullopt,
                     std::move(on_head));
}

asio::awaitable<Result<ClientResponse>> Connection::request_with_body(
    std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers, std::string body,
    std::chrono::milliseconds timeout) {
  return run_request(impl_, std::move(method), std::move(target), std::move(headers), timeout, std::move(body));
}

asio::awaitable<Result<ClientResponse>> Connection::request_with_pieces(
    std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
    std::vector<Bytes> body, std::chrono::milliseconds timeout) {
  return run_request(impl_, std::move(method), std::move(target), std::move(headers), timeout, std::nullopt, {},
                     std::move(body));
}

void Connection::close() {
  impl_->close();
}
void Connection::discard_bodies(bool discard) {
  impl_->discard = discard;
}
void Connection::keep_headers(bool keep) {
  impl_->keep_headers = keep;
}
bool Connection::busy() const {
  return impl_->busy;
}
bool Connection::is_open() const {
  return impl_->open();
}

struct Pool::State {
  // A request waiting for a connection; lives in its coroutine's frame while queued.
  struct Waiter {
    explicit Waiter(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    Connection* conn = nullptr;
    bool aborted = false;
  };

  State(asio::any_io_executor ex, net::Endpoint up, std::size_t max_conn, std::size_t max_wait, ClientLimits l)
      : executor(std::move(ex)),
        upstream(std::move(up)),
        max_connections(std::max<std::size_t>(1, max_conn)),
        max_waiting(max_wait),
        limits(l) {}

  // Hands a finished connection to the oldest waiter, or back to the idle list.
  void release(Connection* c) {
    if (closed) return;
    if (!waiters.empty()) {
      Waiter* w = waiters.front();
      waiters.pop_front();
      w->conn = c;
      w->timer.cancel();
      return;
    }
    idle.push_back(c);
  }

  asio::any_io_executor executor;
  net::Endpoint upstream;
  std::size_t max_connections;
  std::size_t max_waiting;
  ClientLimits limits;
  std::vector<std::unique_ptr<Connection>> all;
  std::vector<Connection*> idle;  // most recently used last: reuse the warmest connection
  std::deque<Waiter*> waiters;
  bool closed = false;
};

namespace {

struct ReleaseGuard {
  ~ReleaseGuard() {
    if (conn) state->release(conn);
  }
  Pool::State* state;
  Connection* conn;
};

asio::awaitable<Result<ClientResponse>> pool_request(std::shared_ptr<Pool::State> s, std::string method,
                                                     std::string target,
                                                     std::vector<std::pair<std::string, std::string>> headers,
                                                     std::chrono::milliseconds timeout, OnHead on_head,
                                                     std::optional<std::vector<Bytes>> pieces = std::nullopt) {
  if (s->closed) co_return fail(errc::closed);
  auto budget = timeout.count() > 0 ? timeout : s->limits.timeout;
  auto start = Clock::now();
  Connection* c = nullptr;
  if (!s->idle.empty()) {
    c = s->idle.back();
    s->idle.pop_back();
  } else if (s->all.size() < s->max_connections) {
    s->all.push_back(std::make_unique<Connection>(s->executor, s->upstream, s->limits));
    c = s->all.back().get();
  } else {
    if (s->waiters.size() >= s->max_waiting) co_return fail(errc::limit_exceeded);
    Pool::State::Waiter w(s->executor);
    w.timer.expires_after(budget);
    s->waiters.push_back(&w);
    error_code ec;
    co_await w.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!w.conn) {
      std::erase(s->waiters, &w);
      co_return fail(s->closed || w.aborted ? errc::closed : errc::timeout);
    }
    c = w.conn;
  }
  ReleaseGuard guard{s.get(), c};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(budget - (Clock::now() - start));
  if (left.count() <= 0) co_return fail(errc::timeout);
  if (pieces)
    co_return co_await c->request_with_pieces(std::move(method), std::move(target), std::move(headers),
                                              std::move(*pieces), left);
  co_return co_await c->request(std::move(method), std::move(target), std::move(headers), left, std::move(on_head));
}

}  // namespace

Pool::Pool(asio::any_io_executor ex, net::Endpoint upstream, std::size_t max_connections, std::size_t max_waiting,
           ClientLimits limits)
    : state_(std::make_shared<State>(std::move(ex), std::move(upstream), max_connections, max_waiting, limits)) {}

Pool::~Pool() {
  state_->closed = true;
  for (auto& c : state_->all) c->close();
  for (auto* w : state_->waiters) w->timer.cancel();
}

asio::awaitable<Result<ClientResponse>> Pool::request(std::string method, std::string target,
                                                      std::vector<std::pair<std::string, std::string>> headers,
                                                      std::chrono::milliseconds timeout, OnHead on_head) {
  return pool_request(state_, std::move(method), std::move(target), std::move(headers), timeout, std::move(on_head));
}

asio::awaitable<Result<ClientResponse>> Pool::request_with_pieces(
    std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
    std::vector<Bytes> body, std::chrono::milliseconds timeout) {
  return pool_request(state_, std::move(method), std::move(target), std::move(headers), timeout, {}, std::move(body));
}

void Pool::abort() {
  auto waiting = std::move(state_->waiters);
  state_->waiters.clear();
  for (auto* w : waiting) {
    w->aborted = true;
    w->timer.cancel();
  }
  for (auto& c : state_->all) c->close();
}

std::size_t Pool::open_connections() const {
  std::size_t n = 0;
  for (auto& c : state_->all) n += c->is_open();
  return n;
}

std::size_t Pool::waiting() const {
  return state_->waiters.size();
}

}  // namespace sf::http
