#include "sf/http/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <charconv>
#include <mutex>
#include <set>
#include <thread>

#include "range.h"
#include "sf/net/listener.h"

namespace sf::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

std::string Request::param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

bool Request::has_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    if (pair.substr(0, pair.find('=')) == name) return true;
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return false;
}

std::string Request::header(std::string_view name) const {
  std::string_view rest(head);
  while (!rest.empty()) {
    auto eol = rest.find("\r\n");
    auto line = rest.substr(0, eol);
    auto colon = line.find(':');
    if (colon == name.size() && std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      auto v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v);
    }
    if (eol == std::string_view::npos) break;
    rest.remove_prefix(eol + 2);
  }
  return {};
}

std::size_t Response::size() const {
  std::size_t n = body.size();
  for (auto& p : pieces) n += p.size();
  return n;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// The meeting point of a held request and whoever answers it. The connection's coroutine waits on
// `timer`; an answer (from any thread) is posted to the connection's executor, stored, and wakes it.
struct Responder::State {
  explicit State(asio::any_io_executor ex) : executor(ex), timer(ex) {}
  asio::any_io_executor executor;
  asio::steady_timer timer;       // touched on the connection's thread only
  std::atomic<bool> done{false};  // first answer wins
  std::optional<Response> response;
  // The connection's thread while it runs the handler: an answer given there and then is taken
  // directly, with no post and no wait (most requests are answered at once).
  std::atomic<std::thread::id> handler_thread{};
};

void Responder::operator()(Response r) const {
  if (state_->done.exchange(true)) return;
  if (state_->handler_thread.load() == std::this_thread::get_id()) {
    state_->response = std::move(r);
    return;
  }
  asio::post(state_->executor, [s = state_, r = std::move(r)]() mutable {
    s->response = std::move(r);
    s->timer.cancel();
  });
}

bool Responder::answered() const {
  return state_->done.load();
}

// Bodies up to this size go out in the same write as their head (one syscall per playlist);
// larger ones after it.
constexpr std::size_t kSeparateHead = 64 * 1024;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Route {
    std::string method;
    std::string path;
    bool prefix = false;
    Handler handler;
    HeldHandler held;
    StreamingHandler streaming;
    std::chrono::milliseconds hold{0};
    Response fallback;
  };

  Impl(net::IoPool& p, const net::Endpoint& at, ServerLimits l) : limits(l) {
    listener = std::make_unique<net::Listener>(p, at, [this](tcp::socket s) { on_accept(std::move(s)); });
  }

  void on_accept(tcp::socket s) {
    if (active.load() >= limits.max_connections || stopping) {
      error_code ec;
      s.close(ec);
      return;
    }
    auto stream = std::make_shared<beast::tcp_stream>(std::move(s));
    {
      std::lock_guard lock(mu);
      open.insert(stream);
    }
    ++active;
    asio::co_spawn(stream->get_executor(), serve(shared_from_this(), stream), asio::detached);
  }

  const Route* find(const std::string& method, const std::string& path, bool& path_known) const {
    for (auto& r : routes) {
      if (!(r.prefix ? path.starts_with(r.path) : path == r.path)) continue;
      path_known = true;
      if (r.method == method || (method == "HEAD" && r.method == "GET")) return &r;
    }
    return nullptr;
  }

  void decorate(Response& r, const Request& req) const {
    if (limits.cors) {
      r.headers.emplace_back("Access-Control-Allow-Origin", "*");
      r.headers.emplace_back("Access-Control-Expose-Headers", "Content-Length, Content-Range, Age, Date");
    }
  }

  static asio::awaitable<void> write_response(beast::tcp_stream& stream, Response& out, const Request& req,
                                              unsigned version, bool keep_alive, error_code& ec) {
    // Range (RFC 9110 14.2): one range of a 200 answer becomes 206 with the slice of the pieces.
    std::size_t total = out.size();
    std::string range = req.header("range");
    std::optional<ByteRange> slice;
    if (!range.empty() && out.status == 200) {
      auto r = parse_range(range, total);
      if (!r) {
        out = Response::text(416, "range not satisfiable\n");
        out.headers.emplace_back("Content-Range", "bytes */" + std::to_string(total));
        total = out.size();
      } else {
        slice = *r;
        out.status = 206;
        out.headers.emplace_back("Content-Range", "bytes " + std::to_string(r->first) + "-" +
                                                      std::to_string(r->first + r->length - 1) + "/" +
                                                      std::to_string(total));
      }
    }
    // The head is written by hand into one string and goes out with the body in a single gather
    // write: one syscall per response, which is what small responses (playlists) cost.
    std::string head;
    head.reserve(256);
    head.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    head.append(std::to_string(out.status));
    head.push_back(' ');
    head.append(bhttp::obsolete_reason(static_cast<bhttp::status>(out.status)));
    head.append("\r\nServer: streamflex\r\nContent-Type: ");
    head.append(out.content_type);
    if (out.status == 200 || out.status == 206) head.append("\r\nAccept-Ranges: bytes");
    for (auto& [k, v] : out.headers) {
      head.append("\r\n");
      head.append(k);
      head.append(": ");
      head.append(v);
    }
    head.append("\r\nContent-Length: ");
    head.append(std::to_string(slice ? slice->length : total));
    if (!keep_alive)
      head.append("\r\nConnection: close");
    else if (version == 10)
      head.append("\r\nConnection: keep-alive");
    head.append("\r\n\r\n");
    std::size_t body_bytes = slice ? slice->length : total;
    if (req.method == "HEAD" || body_bytes > kSeparateHead) {
      // A large body goes after its head in a second write: when many held requests are answered
      // at once (coalesced waiters), every head leaves before any large body fills the socket.
      co_await asio::async_write(stream, asio::buffer(head), asio::redirect_error(asio::use_awaitable, ec));
      if (ec || req.method == "HEAD") co_return;
      head.clear();
    }

    // Gather the body: the owned string, then the shared pieces, sliced to the range if any.
    std::vector<asio::const_buffer> buffers;
    buffers.reserve(out.pieces.size() + 2);
    if (!head.empty()) buffers.emplace_back(head.data(), head.size());
    std::size_t skip = slice ? slice->first : 0;
    std::size_t left = slice ? slice->length : total;
    auto add = [&](const void* data, std::size_t size) {
      if (left == 0) return;
      if (skip >= size) {
        skip -= size;
        return;
      }
      std::size_t n = std::min(size - skip, left);
      buffers.emplace_back(static_cast<const char*>(data) + skip, n);
      skip = 0;
      left -= n;
    };
    add(out.body.data(), out.body.size());
    for (auto& p : out.pieces) add(p.data(), p.size());
    co_await asio::async_write(stream, buffers, asio::redirect_error(asio::use_awaitable, ec));
  }

  static Request request_of(const bhttp::request_header<>& raw, const std::string& remote) {
    Request req;
    req.method = std::string(raw.method_string());
    req.remote = remote;
    std::string target(raw.target());
    auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    for (auto& f : raw) {
      req.head.append(f.name_string());
      req.head.append(": ");
      req.head.append(f.value());
      req.head.append("\r\n");
    }
    return req;
  }

  // Streams a request body to the route's sink, 64 KiB at a time. Returns whether the connection
  // may serve another request.
  static asio::awaitable<bool> stream_body(std::shared_ptr<Impl> self, beast::tcp_stream& stream,
                                           beast::flat_buffer& buffer, bhttp::request_parser<bhttp::empty_body>& head,
                                           const Route& route, std::optional<std::size_t> body_limit,
                                           const std::string& remote, error_code& ec) {
    Request req = request_of(head.get(), remote);
    req.executor = stream.get_executor();
    unsigned version = head.get().version();
    bool keep_alive = head.get().keep_alive() && !self->stopping;
    auto decision = route.streaming(req);
    Response out;
    bool read_all = true;
    if (auto* refusal = std::get_if<Response>(&decision)) {
      out = std::move(*refusal);
      read_all = head.is_done();
    } else {
      auto sink = std::move(std::get<std::unique_ptr<BodySink>>(decision));
      bhttp::request_parser<bhttp::buffer_body> parser{std::move(head)};
      if (body_limit)
        parser.body_limit(*body_limit);
      else
        parser.body_limit(boost::none);  // long-running uploads: each read still has the idle timeout
      std::vector<char> piece(64 * 1024);
      while (!parser.is_done()) {
        parser.get().body().data = piece.data();
        parser.get().body().size = piece.size();
        stream.expires_after(self->limits.idle_timeout);
        co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) break;
        std::size_t n = piece.size() - parser.get().body().size;
        if (n && !sink->on_data(ByteView(reinterpret_cast<const std::byte*>(piece.data()), n))) {
          read_all = false;
          break;
        }
      }
      if (ec && ec != bhttp::error::body_limit) co_return false;  // the peer left mid-body
      out = ec ? Response::text(413, "body too large\n") : sink->finish();
      if (ec) read_all = false;
      ec = {};
    }
    self->decorate(out, req);
    bool keep = keep_alive && read_all;
    stream.expires_after(self->limits.idle_timeout);
    co_await write_response(stream, out, req, version, keep, ec);
    co_return keep && !ec;
  }

  static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<beast::tcp_stream> stream) {
    beast::flat_buffer buffer;
    error_code ec;
    bool first = true;
    std::string remote;
    if (auto ep = stream->socket().remote_endpoint(ec); !ec) remote = ep.address().to_string();
    for (;;) {
      // The head first; then the body, buffered (string) or streamed to a sink, by route.
      bhttp::request_parser<bhttp::empty_body> head;
      head.header_limit(static_cast<std::uint32_t>(self->limits.max_header_bytes));
      head.body_limit(self->limits.max_body_bytes);
      if (!first && buffer.size() == 0) {
        // A kept-alive connection may idle until the next request begins...
        stream->expires_after(self->limits.idle_timeout);
        auto n = co_await stream->async_read_some(buffer.prepare(4096), asio::redirect_error(asio::use_awaitable, ec));
        buffer.commit(n);
        if (ec) break;
      }
      // ...but every request head, first or not, must then arrive within the header timeout
      // (slow-loris).
      first = false;
      stream->expires_after(self->limits.header_timeout);
      co_await bhttp::async_read_header(*stream, buffer, head, asio::redirect_error(asio::use_awaitable, ec));
      std::optional<std::size_t> route_limit;  // set by body_limit() for this path, if any
      if (!ec) {
        std::string_view target(head.get().target());
        for (auto& [prefix, bytes] : self->body_limits)
          if (target.starts_with(prefix)) route_limit = bytes;
        bool path_known = false;
        std::string method(head.get().method_string());
        std::string path(target.substr(0, target.find('?')));
        if (const Route* r = self->find(method, path, path_known); r && r->streaming) {
          bool keep = co_await stream_body(self, *stream, buffer, head, *r, route_limit, remote, ec);
          if (!keep || ec) break;
          continue;
        }
      }
      bhttp::request_parser<bhttp::string_body> parser{std::move(head)};
      if (!ec && !parser.is_done()) {
        parser.body_limit(route_limit.value_or(self->limits.max_body_bytes));
        // A large body may take longer than the header: allow the idle time per read.
        stream->expires_after(self->limits.idle_timeout);
        co_await bhttp::async_read(*stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) {
        int status = 0;
        if (ec == bhttp::error::header_limit)
          status = 431;
        else if (ec == bhttp::error::body_limit)
          status = 413;
        else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                 ec != asio::error::operation_aborted && ec != asio::error::connection_reset && ec != asio::error::eof)
          status = 400;  // malformed, including conflicting Content-Length / Transfer-Encoding
        if (status) {
          Response r = Response::text(status, ec.message() + "\n");
          Request none;
          stream->expires_after(std::chrono::seconds(2));
          co_await write_response(*stream, r, none, 11, false, ec);
        }
        break;
      }
      auto& raw = parser.get();
      Request req = request_of(raw.base(), remote);
      req.body = std::move(raw.body());
      req.executor = stream->get_executor();
      bool keep_alive = raw.keep_alive() && !self->stopping;

      Response out;
      bool path_known = false;
      const Route* route = self->find(req.method, req.path, path_known);
      if (req.method == "OPTIONS" && self->limits.cors) {
        out = Response::text(204, "");
        out.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS, PUT, POST, DELETE");
        out.headers.emplace_back("Access-Control-Allow-Headers", "*");
        out.headers.emplace_back("Access-Control-Max-Age", "86400");
      } else if (!route) {
        out = path_known ? Response::text(405, "method not allowed\n") : Response::text(404, "not found\n");
      } else if (route->held) {
        auto state = std::make_shared<Responder::State>(stream->get_executor());
        state->handler_thread = std::this_thread::get_id();
        route->held(req, Responder(state));
        state->handler_thread = std::thread::id{};
        if (!state->response) {
          // Wait for the answer or the hold time; a client that leaves meanwhile is noticed at write.
          state->timer.expires_after(route->hold);
          stream->expires_never();
          co_await state->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (state->response) {
          out = std::move(*state->response);
        } else {
          state->done = true;  // later answers are ignored
          out = route->fallback;
        }
        ec = {};
      } else {
        out = route->handler(req);
      }
      self->decorate(out, req);
      stream->expires_after(self->limits.idle_timeout);
      co_await write_response(*stream, out, req, raw.version(), keep_alive, ec);
      if (ec || !keep_alive) break;
    }
    stream->socket().shutdown(tcp::socket::shutdown_send, ec);
    stream->close();
    {
      std::lock_guard lock(self->mu);
      self->open.erase(stream);
    }
    --self->active;
  }

  ServerLimits limits;
  std::vector<Route> routes;
  std::vector<std::pair<std::string, std::size_t>> body_limits;
  std::unique_ptr<net::Listener> listener;
  std::atomic<std::size_t> active{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;  // guards `open`; touched on accept, close and stop only
  std::set<std::shared_ptr<beast::tcp_stream>> open;
};

Server::Server(net::IoPool& pool, const net::Endpoint& at, ServerLimits limits)
    : impl_(std::make_shared<Impl>(pool, at, limits)) {}

Server::~Server() = default;

void Server::route(std::string method, std::string path, Handler h) {
  impl_->routes.push_back({std::move(method), std::move(path), false, std::move(h), {}, {}, {}, {}});
}

void Server::route_prefix(std::string method, std::string prefix, Handler h) {
  impl_->routes.push_back({std::move(method), std::move(prefix), true, std::move(h), {}, {}, {}, {}});
}

void Server::route_held(std::string method, std::string prefix, std::chrono::milliseconds hold, Response fallback,
                        HeldHandler h) {
  impl_->routes.push_back(
      {std::move(method), std::move(prefix), true, {}, std::move(h), {}, hold, std::move(fallback)});
}

void Server::route_streaming(std::string method, std::string prefix, StreamingHandler h) {
  Impl::Route r;
  r.method = std::move(method);
  r.path = std::move(prefix);
  r.prefix = true;
  r.streaming = std::move(h);
  impl_->routes.push_back(std::move(r));
}

void Server::body_limit(std::string prefix, std::size_t bytes) {
  impl_->body_limits.emplace_back(std::move(prefix), bytes);
}

void Server::start() {
  impl_->listener->start();
}

void Server::stop() {
  impl_->stopping = true;
  impl_->listener->close();
  std::lock_guard lock(impl_->mu);
  for (auto& s : impl_->open)
    asio::post(s->get_executor(), [s] {
      error_code ec;
      s->socket().close(ec);
    });
}

std::uint16_t Server::port() const {
  return impl_->listener->port();
}

std::size_t Server::active_connections() const {
  return impl_->active.load();
}

}  // namespace sf::http
