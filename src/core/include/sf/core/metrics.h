// The process's Prometheus registry, handed to each component at construction (not a global).
// prometheus-cpp families and metrics are thread-safe; serialize() may run on any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

namespace sf {

class Metrics {
 public:
  Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}
  prometheus::Registry& registry() { return *registry_; }
  // A collector computed at scrape time (for example per-stream statistics read from live
  // sessions). Held weakly: it stops being scraped when its owner goes away. Startup only.
  void add_collectable(std::weak_ptr<prometheus::Collectable> c) { collectables_.push_back(std::move(c)); }
  // Prometheus text exposition format 0.0.4.
  std::string serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
};

}  // namespace sf
