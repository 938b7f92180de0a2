// Writes each publish to <dir>/<stream>-<start ms>.flv, for archives and for checking what ingest
// received with ordinary tools (ffprobe). An Observer: called on I/O threads, it only queues
// shared frames; one writer thread does the file I/O. The queue is bounded in bytes: past the
// bound frames are dropped (counted and logged once per publish), never I/O threads blocked.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <variant>

#include "sf/ingest/ingest.h"

namespace sf::ingest {

class Recorder final : public Observer {
 public:
  Recorder(std::string dir, std::size_t max_queued_bytes = 64 * 1024 * 1024);
  ~Recorder() override;

  std::unique_ptr<PublishHandler> on_publish_start(const PublishInfo& info) override;

 private:
  class Handler;
  struct Open {
    std::string path;
  };
  struct Close {};
  struct Item {
    std::uint64_t session;
    std::variant<Open, media::TrackConfig, media::MediaFrame, Close> what;
    std::size_t bytes = 0;
  };
  void push(Item item);
  void run();

  std::string dir_;
  std::size_t max_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::size_t queued_bytes_ = 0;
  std::map<std::uint64_t, bool> overflowed_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace sf::ingest
