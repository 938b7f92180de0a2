#include "sf/net/io_pool.h"

#include <charconv>

namespace sf::net {

IoPool::IoPool(std::size_t threads) {
  if (threads == 0) threads = 1;
  for (std::size_t i = 0; i < threads; ++i) {
    // Concurrency hint 1: each context is run by exactly one thread, so Asio can skip locking.
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
}

IoPool::~IoPool() {
  stop();
  join();
}

void IoPool::start() {
  for (auto& ctx : contexts_) {
    guards_.push_back(
        std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ctx->get_executor()));
    threads_.emplace_back([c = ctx.get()] { c->run(); });
  }
}

void IoPool::join() {
  guards_.clear();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void IoPool::stop() {
  for (auto& ctx : contexts_) ctx->stop();
}

asio::io_context& IoPool::next() {
  return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

std::vector<asio::io_context*> IoPool::contexts() {
  std::vector<asio::io_context*> out;
  for (auto& c : contexts_) out.push_back(c.get());
  return out;
}

Result<Endpoint> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return fail(errc::invalid_argument);
  Endpoint ep;
  ep.host = text.substr(0, colon);
  if (ep.host.size() >= 2 && ep.host.front() == '[' && ep.host.back() == ']')
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  unsigned port = 0;
  auto p = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port > 65535) return fail(errc::invalid_argument);
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

}  // namespace sf::net
