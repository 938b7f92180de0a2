#include "transcode_file.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "sf/cmaf/fmp4.h"
#include "sf/core/log.h"
#include "sf/media/flv.h"
#include "sf/transcode/transcoder.h"

namespace sf::app {
namespace {

// Writes each video track to <dir>/<name>.mp4: its init segment, then one fragment per 60 frames.
class FileSink final : public transcode::Sink {
 public:
  explicit FileSink(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~FileSink() override {
    for (auto& [id, t] : tracks_) flush(t, t.last_dts + std::max<std::int64_t>(t.step, 1));
  }
  void on_track(const media::TrackConfig& track) override {
    if (track.type != media::MediaType::video) return;
    auto& t = tracks_[track.track_id];
    if (!t.out.is_open()) {
      t.name = track.name.empty() ? fmt::format("track{}", track.track_id) : track.name;
      t.out.open(dir_ / (t.name + ".mp4"), std::ios::binary | std::ios::trunc);
    } else {
      flush(t, t.pending.empty() ? 0 : t.last_dts + t.step);
    }
    t.track = track;
    if (auto init = cmaf::write_init_segment(track)) write(t, init->view());
  }
  void on_frame(const media::MediaFrame& f) override {
    auto it = tracks_.find(f.track_id);
    if (it == tracks_.end()) return;
    auto& t = it->second;
    if (t.last_dts >= 0 && f.dts > t.last_dts) t.step = f.dts - t.last_dts;
    if (t.pending.size() >= 60) flush(t, f.dts);
    t.pending.push_back(f);
    t.last_dts = f.dts;
    ++t.frames;
  }

 private:
  struct Track {
    std::string name;
    media::TrackConfig track;
    std::ofstream out;
    std::vector<media::MediaFrame> pending;
    std::int64_t last_dts = -1, step = 3000;
    std::uint32_t sequence = 1;
    std::uint64_t frames = 0, bytes = 0;
  };
  void write(Track& t, ByteView v) {
    t.out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
    t.bytes += v.size();
  }
  void flush(Track& t, std::int64_t next_dts) {
    if (t.pending.empty()) return;
    auto chunk = cmaf::write_chunk(t.track, t.sequence++, t.pending, next_dts, false);
    write(t, chunk.header.view());
    for (auto& p : chunk.payload) write(t, p.view());
    t.pending.clear();
  }
  std::filesystem::path dir_;
  std::map<std::uint32_t, Track> tracks_;
};

class Feed final : public media::FlvDemuxer::Output {
 public:
  explicit Feed(transcode::StreamInput& in) : in_(in) {}
  void on_track(const media::TrackConfig& track) override { in_.on_track(track); }
  void on_frame(media::MediaFrame&& frame) override {
    in_.on_frame(frame);
    if (frame.type == media::MediaType::video)
      media_end_ = std::max(media_end_, double(frame.dts) / media::kVideoTimescale);
  }
  double media_end_ = 0;

 private:
  transcode::StreamInput& in_;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int run_transcode_file(const AppConfig& cfg, const std::string& input, const std::string& output_dir, bool realtime) {
  // One read of the whole file (an istreambuf_iterator copies it a byte at a time: about 14
  // instructions per byte, 0.4 % of a transcode's instructions).
  std::string data;
  {
    std::ifstream in(input, std::ios::binary | std::ios::ate);
    auto size = in ? static_cast<std::streamoff>(in.tellg()) : std::streamoff(-1);
    if (size > 0) {
      data.resize(static_cast<std::size_t>(size));
      in.seekg(0);
      if (!in.read(data.data(), size)) data.clear();
    }
  }
  if (data.size() < 13 || data.compare(0, 3, "FLV") != 0) {
    std::fprintf(stderr, "streamflex transcode: %s is not an FLV file\n", input.c_str());
    return 1;
  }
  std::filesystem::create_directories(output_dir);
  Metrics metrics;
  auto tcfg = cfg.transcode;
  tcfg.keyframe_interval = cfg.origin.segment_target;
  tcfg.backpressure = !realtime;
  // The reader waits for the queue instead of dropping: a short queue is enough, and keeps the
  // decoded pictures in flight (and memory) small.
  if (!realtime) tcfg.max_queue_frames = std::min<std::int64_t>(tcfg.max_queue_frames, 8);
  auto start_wall = std::chrono::steady_clock::now();
  double cpu0 = cpu_seconds();
  double media = 0;
  {
    transcode::Transcoder transcoder(tcfg, metrics);
    auto sink = std::make_shared<FileSink>(output_dir);
    std::weak_ptr<FileSink> weak = sink;
    {
      auto stream = transcoder.open_stream("file", "", sink);
      sink.reset();
      Feed feed(*stream);
      media::FlvDemuxer demux;
      Bytes all = Bytes::adopt(std::move(data));
      auto v = all.view();
      std::size_t pos = (std::size_t(std::to_integer<unsigned>(v[5])) << 24 | std::to_integer<unsigned>(v[6]) << 16 |
                         std::to_integer<unsigned>(v[7]) << 8 | std::to_integer<unsigned>(v[8])) +
                        4;
      auto t0 = std::chrono::steady_clock::now();
      while (pos + 11 <= v.size()) {
        unsigned type = std::to_integer<unsigned>(v[pos]) & 0x1f;
        std::size_t size = std::size_t(std::to_integer<unsigned>(v[pos + 1])) << 16 |
                           std::to_integer<unsigned>(v[pos + 2]) << 8 | std::to_integer<unsigned>(v[pos + 3]);
        std::int64_t ts = std::int64_t(std::to_integer<unsigned>(v[pos + 7])) << 24 |
                          std::to_integer<unsigned>(v[pos + 4]) << 16 | std::to_integer<unsigned>(v[pos + 5]) << 8 |
                          std::to_integer<unsigned>(v[pos + 6]);
        if (pos + 11 + size > v.size()) break;
        Bytes body = all.share(pos + 11, size);
        pos += 11 + size + 4;
        if (realtime) std::this_thread::sleep_until(t0 + std::chrono::milliseconds(ts));
        if (type == 9) (void)demux.video(ts, body, feed);
        if (type == 8) (void)demux.audio(ts, body, feed);
      }
      media = feed.media_end_;
    }
    // The input is closed; wait for the pipeline to let go of the sink (everything written).
    while (!weak.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_wall).count();
  double cpu = cpu_seconds() - cpu0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"input\":\"%s\",\"realtime\":%s,\"media_seconds\":%.3f,\"wall_seconds\":%.3f,\"cpu_seconds\":%.3f,"
      "\"cpu_per_media_second\":%.4f,\"speed\":%.3f,\"peak_rss_kb\":%ld}\n",
      input.c_str(), realtime ? "true" : "false", media, wall, cpu, media > 0 ? cpu / media : 0,
      wall > 0 ? media / wall : 0, ru.ru_maxrss);
  return 0;
}

}  // namespace sf::app
