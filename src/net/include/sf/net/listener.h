// A TCP acceptor per io_context on one address with SO_REUSEPORT, so the kernel spreads new
// connections over cores and no accept lock is shared. Created on the main thread; each acceptor
// is then used only from its own context.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "sf/net/io_pool.h"

namespace sf::net {

class Listener {
 public:
  using OnAccept = std::function<void(asio::ip::tcp::socket)>;

  // Binds one acceptor per context of `pool`. Port 0 binds a free port (the same for all, taken
  // by the first acceptor). Throws at startup on failure (bad address, port in use).
  Listener(IoPool& pool, const Endpoint& at, OnAccept on_accept);
  ~Listener();

  std::uint16_t port() const { return port_; }
  // Starts accepting on every context.
  void start();
  // Closes the acceptors (posted to their contexts); established connections are not touched.
  void close();

 private:
  struct Acceptor;
  std::vector<std::shared_ptr<Acceptor>> acceptors_;
  std::uint16_t port_ = 0;
};

}  // namespace sf::net
