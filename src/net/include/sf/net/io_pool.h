// One io_context per core, each run by one thread (STYLE: per-core design). A connection lives
// its whole life on the context that accepted it. start()/stop()/join() from the main thread only;
// next() and contexts() from any thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sf/core/result.h"

namespace sf::net {

namespace asio = boost::asio;

class IoPool {
 public:
  explicit IoPool(std::size_t threads);
  ~IoPool();

  void start();
  // Lets in-flight handlers finish: each context runs until it has no more work.
  void join();
  // Stops every context now (handlers not yet run are dropped).
  void stop();

  asio::io_context& next();
  std::vector<asio::io_context*> contexts();
  std::size_t size() const { return contexts_.size(); }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
};

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
};
// "host:port" (IPv6 as "[::1]:port").
Result<Endpoint> parse_endpoint(const std::string& text);

}  // namespace sf::net
