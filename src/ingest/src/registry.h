// Which streams are live, and who publishes them. Claims enforce one publisher per stream:
// a second claim is refused, or (with takeover) ends the first. Also the Prometheus collector for
// per-stream statistics, with at most `max_labels` streams exported by name.
// Thread-safe; the mutex is taken on publish start/stop and on scrapes, never per frame.
#pragma once

#include <prometheus/collectable.h>

#include <map>
#include <memory>
#include <mutex>

#include "live_stream.h"
#include "sf/core/result.h"

namespace sf::ingest {

class Registry : public prometheus::Collectable {
 public:
  explicit Registry(std::size_t max_labels) : max_labels_(max_labels) {}

  // errc::conflict if the stream is live and takeover is off. With takeover, the live publisher is
  // told to stop ("taken_over") and the new one takes its place at once.
  Result<void> claim(const std::shared_ptr<LiveStream>& s, bool takeover);
  // Removes `s` if it still holds its stream's slot.
  void release(const LiveStream& s);
  std::vector<std::shared_ptr<LiveStream>> live() const;
  // Asks every live publisher to stop.
  void stop_all(std::string_view reason);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::size_t max_labels_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<LiveStream>, std::less<>> streams_;
};

}  // namespace sf::ingest
