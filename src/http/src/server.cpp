#include "sf/http/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <mutex>
#include <set>

#include "sf/core/log.h"
#include "sf/net/listener.h"

namespace sf::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

std::string Request::param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
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

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Route {
    std::string method;
    std::string path;
    bool prefix;
    Handler handler;
  };

  Impl(net::IoPool& p, const net::Endpoint& at, ServerLimits l) : pool(p), limits(l) {
    listener = std::make_unique<net::Listener>(pool, at, [this](tcp::socket s) { on_accept(std::move(s)); });
  }

  void on_accept(tcp::socket s) {
    if (active.load() >= limits.max_connections || stopping) {
      boost::system::error_code ec;
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

  const Route* find(const std::string& method, const std::string& path) const {
    for (auto& r : routes) {
      bool method_ok = r.method == method || (method == "HEAD" && r.method == "GET");
      if (!method_ok) continue;
      if (r.prefix ? path.starts_with(r.path) : path == r.path) return &r;
    }
    return nullptr;
  }

  Response dispatch(const Request& req) const {
    if (auto* r = find(req.method, req.path)) return r->handler(req);
    for (auto& r : routes)
      if (r.prefix ? req.path.starts_with(r.path) : req.path == r.path) return Response::text(405, "method not allowed\n");
    return Response::text(404, "not found\n");
  }

  static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<beast::tcp_stream> stream) {
    beast::flat_buffer buffer(self->limits.max_header_bytes + self->limits.max_body_bytes);
    boost::system::error_code ec;
    bool first = true;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(self->limits.max_header_bytes));
      parser.body_limit(self->limits.max_body_bytes);
      stream->expires_after(first ? self->limits.header_timeout : self->limits.idle_timeout);
      first = false;
      co_await bhttp::async_read(*stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        int status = 0;
        if (ec == bhttp::error::header_limit) status = 431;
        else if (ec == bhttp::error::body_limit) status = 413;
        else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                 ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                 ec != asio::error::eof)
          status = 400;
        if (status) {
          bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
          res.set(bhttp::field::connection, "close");
          res.body() = ec.message() + "\n";
          res.prepare_payload();
          stream->expires_after(std::chrono::seconds(2));
          co_await bhttp::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
        }
        break;
      }
      auto& raw = parser.get();
      Request req;
      req.method = std::string(raw.method_string());
      std::string target(raw.target());
      auto q = target.find('?');
      req.path = target.substr(0, q);
      if (q != std::string::npos) req.query = target.substr(q + 1);
      for (auto& f : raw) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        req.headers[name] = std::string(f.value());
      }
      req.body = std::move(raw.body());
      Response out = self->dispatch(req);
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(out.status), raw.version()};
      res.set(bhttp::field::server, "streamflex");
      res.set(bhttp::field::content_type, out.content_type);
      for (auto& [k, v] : out.headers) res.set(k, v);
      res.keep_alive(raw.keep_alive() && !self->stopping);
      bool head = req.method == "HEAD";
      res.body() = std::move(out.body);
      res.prepare_payload();
      if (head) res.body().clear();
      bhttp::response_serializer<bhttp::string_body> sr{res};
      if (head) sr.split(true);
      stream->expires_after(self->limits.idle_timeout);
      if (head) co_await bhttp::async_write_header(*stream, sr, asio::redirect_error(asio::use_awaitable, ec));
      else co_await bhttp::async_write(*stream, sr, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
    }
    stream->socket().shutdown(tcp::socket::shutdown_send, ec);
    stream->close();
    {
      std::lock_guard lock(self->mu);
      self->open.erase(stream);
    }
    --self->active;
  }

  net::IoPool& pool;
  ServerLimits limits;
  std::vector<Route> routes;
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
  impl_->routes.push_back({std::move(method), std::move(path), false, std::move(h)});
}

void Server::route_prefix(std::string method, std::string prefix, Handler h) {
  impl_->routes.push_back({std::move(method), std::move(prefix), true, std::move(h)});
}

void Server::start() { impl_->listener->start(); }

void Server::stop() {
  impl_->stopping = true;
  impl_->listener->close();
  std::lock_guard lock(impl_->mu);
  for (auto& s : impl_->open) asio::post(s->get_executor(), [s] { s->cancel(); s->socket().close(); });
}

std::uint16_t Server::port() const { return impl_->listener->port(); }

}  // namespace sf::http
