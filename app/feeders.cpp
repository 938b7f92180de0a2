#include "feeders.h"

#include "sf/core/log.h"

namespace sf::app {
namespace {

class OriginHandler final : public ingest::PublishHandler {
 public:
  explicit OriginHandler(std::unique_ptr<origin::StreamSink> sink) : sink_(std::move(sink)) {}
  void on_track(const media::TrackConfig& track) override { sink_->on_track(track); }
  void on_frame(const media::MediaFrame& frame) override { sink_->on_frame(frame); }
  void on_stop(std::string_view) override { sink_.reset(); }

 private:
  std::unique_ptr<origin::StreamSink> sink_;
};

class OriginFeeder final : public ingest::Observer {
 public:
  explicit OriginFeeder(origin::Origin& o) : origin_(o) {}
  std::unique_ptr<ingest::PublishHandler> on_publish_start(const ingest::PublishInfo& info) override {
    auto sink = origin_.open_stream(info.stream);
    if (!sink) {
      log::warn("app", "origin is full: stream not packaged", {{"stream", info.stream}});
      return nullptr;
    }
    return std::make_unique<OriginHandler>(std::move(sink));
  }

 private:
  origin::Origin& origin_;
};

}  // namespace

std::shared_ptr<ingest::Observer> make_origin_feeder(origin::Origin& origin) {
  return std::make_shared<OriginFeeder>(origin);
}

}  // namespace sf::app
