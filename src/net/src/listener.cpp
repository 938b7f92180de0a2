#include "sf/net/listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <boost/asio/post.hpp>

#include <stdexcept>

namespace sf::net {

struct Listener::Acceptor : std::enable_shared_from_this<Listener::Acceptor> {
  Acceptor(asio::io_context& ctx, OnAccept cb) : acceptor(ctx), on_accept(std::move(cb)) {}

  void accept() {
    acceptor.async_accept([self = shared_from_this()](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) {
        s.set_option(asio::ip::tcp::no_delay(true), ec);
        self->on_accept(std::move(s));
      }
      // Errors such as EMFILE are transient: keep accepting.
      self->accept();
    });
  }

  asio::ip::tcp::acceptor acceptor;
  OnAccept on_accept;
};

Listener::Listener(IoPool& pool, const Endpoint& at, OnAccept on_accept) {
  auto address = asio::ip::make_address(at.host == "localhost" ? "127.0.0.1" : at.host);
  std::uint16_t port = at.port;
  if (port != 0) {
    // SO_REUSEPORT would let us join another process's listener on the same port and split its
    // traffic silently: claim the port once without it first, so "in use" is an error.
    asio::ip::tcp::acceptor probe(*pool.contexts().front());
    asio::ip::tcp::endpoint ep(address, port);
    probe.open(ep.protocol());
    probe.set_option(asio::socket_base::reuse_address(true));
    boost::system::error_code ec;
    probe.bind(ep, ec);
    if (ec) throw std::runtime_error("cannot listen on " + at.host + ":" + std::to_string(port) + ": " + ec.message());
  }
  for (auto* ctx : pool.contexts()) {
    auto a = std::make_shared<Acceptor>(*ctx, on_accept);
    asio::ip::tcp::endpoint ep(address, port);
    a->acceptor.open(ep.protocol());
    // Child processes (the demo publisher) must not inherit listening sockets.
    ::fcntl(a->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
    a->acceptor.set_option(asio::socket_base::reuse_address(true));
    int one = 1;
    ::setsockopt(a->acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    boost::system::error_code ec;
    a->acceptor.bind(ep, ec);
    if (ec) throw std::runtime_error("cannot listen on " + at.host + ":" + std::to_string(port) + ": " + ec.message());
    a->acceptor.listen(asio::socket_base::max_listen_connections);
    port = a->acceptor.local_endpoint().port();
    acceptors_.push_back(std::move(a));
  }
  port_ = port;
}

Listener::~Listener() = default;

void Listener::start() {
  for (auto& a : acceptors_) asio::post(a->acceptor.get_executor(), [a] { a->accept(); });
}

void Listener::close() {
  for (auto& a : acceptors_)
    asio::post(a->acceptor.get_executor(), [a] {
      boost::system::error_code ec;
      a->acceptor.close(ec);
    });
}

}  // namespace sf::net
