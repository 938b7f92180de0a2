#include "recorder.h"

#include <cstdio>
#include <filesystem>

#include "sf/core/log.h"
#include "sf/media/flv.h"

namespace sf::ingest {

Recorder::Recorder(std::string dir, std::size_t max_queued_bytes) : dir_(std::move(dir)), max_bytes_(max_queued_bytes) {
  std::filesystem::create_directories(dir_);
  thread_ = std::thread([this] { run(); });
}

Recorder::~Recorder() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void Recorder::push(Item item) {
  {
    std::lock_guard lock(mu_);
    if (item.bytes && queued_bytes_ + item.bytes > max_bytes_) {
      if (!overflowed_[item.session]) {
        overflowed_[item.session] = true;
        log::warn("recorder", "recording queue full: dropping frames", {{"session", item.session}});
      }
      return;
    }
    queued_bytes_ += item.bytes;
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
}

class Recorder::Handler final : public PublishHandler {
 public:
  Handler(Recorder& r, std::uint64_t session) : recorder_(r), session_(session) {}
  void on_track(const media::TrackConfig& track) override { recorder_.push({session_, track}); }
  void on_frame(const media::MediaFrame& frame) override { recorder_.push({session_, frame, frame.data.size()}); }
  void on_stop(std::string_view) override { recorder_.push({session_, Close{}}); }

 private:
  Recorder& recorder_;
  std::uint64_t session_;
};

std::unique_ptr<PublishHandler> Recorder::on_publish_start(const PublishInfo& info) {
  auto path = (std::filesystem::path(dir_) / (info.stream + "-" + std::to_string(info.started_ms) + ".flv")).string();
  push({info.session_id, Open{path}});
  return std::make_unique<Handler>(*this, info.session_id);
}

void Recorder::run() {
  struct File {
    std::FILE* f = nullptr;
    std::unique_ptr<media::FlvWriter> writer;
    std::string path;
    std::int64_t last_ms = 0;  // time of the last frame written, for later sequence headers
    std::uint32_t audio_timescale = 1000;
  };
  std::map<std::uint64_t, File> files;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
    if (queue_.empty() && done_) break;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= item.bytes;
    lock.unlock();
    auto& file = files[item.session];
    if (auto* open = std::get_if<Open>(&item.what)) {
      file.path = open->path;
      file.f = std::fopen(open->path.c_str(), "wb");
      if (!file.f)
        log::error("recorder", "cannot open recording", {{"path", open->path}});
      else {
        file.writer =
            std::make_unique<media::FlvWriter>([f = file.f](ByteView b) { std::fwrite(b.data(), 1, b.size(), f); });
        file.writer->write_header(true, true);
      }
    } else if (auto* track = std::get_if<media::TrackConfig>(&item.what)) {
      if (track->type == media::MediaType::audio && track->timescale) file.audio_timescale = track->timescale;
      if (file.writer) file.writer->write_track(*track, file.last_ms);
    } else if (auto* frame = std::get_if<media::MediaFrame>(&item.what)) {
      auto scale = frame->type == media::MediaType::video ? media::kVideoTimescale : file.audio_timescale;
      file.last_ms = frame->dts * 1000 / scale;
      if (file.writer) file.writer->write_frame(*frame);
    } else {
      if (file.f) {
        std::fclose(file.f);
        log::info("recorder", "recording closed", {{"path", file.path}});
      }
      files.erase(item.session);
      lock.lock();
      overflowed_.erase(item.session);
      continue;
    }
    lock.lock();
  }
  for (auto& [_, file] : files)
    if (file.f) std::fclose(file.f);
}

}  // namespace sf::ingest
