#include "passaudio.h"

#include <boost/asio/post.hpp>

#include <ctime>

#include "sf/core/log.h"

namespace sf::transcode {

namespace asio = boost::asio;

namespace {

// Adds the calling thread's CPU time spent in the enclosing scope to `sum`.
class CpuTime {
 public:
  explicit CpuTime(std::atomic<std::int64_t>& sum) : sum_(sum), start_(now()) {}
  ~CpuTime() { sum_.fetch_add(now() - start_, std::memory_order_relaxed); }

 private:
  static std::int64_t now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  std::atomic<std::int64_t>& sum_;
  std::int64_t start_;
};

}  // namespace

PassthroughAudio::PassthroughAudio(asio::thread_pool& pool, std::string stream, std::shared_ptr<Sink> sink,
                                   std::shared_ptr<std::atomic<bool>> stopping, bool audio_always,
                                   std::size_t max_queue)
    : stream_(std::move(stream)),
      sink_(std::move(sink)),
      stopping_(std::move(stopping)),
      audio_always_(audio_always),
      max_queue_(std::max<std::size_t>(1, max_queue)),
      strand_(asio::make_strand(pool.get_executor())),
      seq_([this](SeqItem& item) { emit(item); }) {}

void PassthroughAudio::forward(SeqItem item) {
  auto slot = seq_.open(1, -1);
  seq_.add(slot, std::move(item));
  seq_.done(slot);
}

void PassthroughAudio::on_track(const media::TrackConfig& track) {
  bool encode = track.type == media::MediaType::audio && (track.codec != media::Codec::aac || audio_always_);
  if (track.type == media::MediaType::audio && transcode_ && track.track_id == audio_track_id_ && !encode) {
    // Back to AAC: what the encoder holds goes out first; a later non-AAC track starts a new one.
    transcode_ = false;
    auto slot = seq_.open(1, -1);
    asio::post(strand_, [self = shared_from_this(), slot] { self->audio_flush(slot); });
  }
  if (!encode) {
    SeqItem item;
    item.kind = SeqItem::track;
    item.track_config = track;
    forward(std::move(item));
    return;
  }
  transcode_ = true;
  audio_track_id_ = track.track_id;
  auto slot = seq_.open(1, -1);
  asio::post(strand_, [self = shared_from_this(), slot, track] { self->audio_source(slot, track); });
}

void PassthroughAudio::on_frame(const media::MediaFrame& frame) {
  if (!transcode_ || frame.type != media::MediaType::audio || frame.track_id != audio_track_id_) {
    SeqItem item;
    item.media = frame;
    forward(std::move(item));
    return;
  }
  if (queued_.load(std::memory_order_relaxed) >= max_queue_) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    if (!skipping_)
      log::warn("transcode", "audio queue full: source audio frames skipped",
                {{"stream", stream_}, {"queued", max_queue_}});
    skipping_ = true;
    return;
  }
  skipping_ = false;
  queued_.fetch_add(1, std::memory_order_relaxed);
  auto slot = seq_.open(1, -1);
  asio::post(strand_, [self = shared_from_this(), slot, frame] { self->audio_frame(slot, frame); });
}

void PassthroughAudio::finish() {
  if (!transcode_) return;
  auto slot = seq_.open(1, -1);
  asio::post(strand_, [self = shared_from_this(), slot] { self->audio_flush(slot); });
}

void PassthroughAudio::audio_source(std::uint64_t slot, media::TrackConfig track) {
  CpuTime cpu(cpu_ns_);
  std::string error;
  if (!audio_ && !audio_failed_) {
    audio_ = AudioTranscoder::make(track.track_id, 128000, &error);
    if (!audio_) {
      audio_failed_ = true;
      log::error("transcode", "audio encoder failed: no audio", {{"stream", stream_}, {"error", error}});
    } else {
      SeqItem item;
      item.kind = SeqItem::track;
      item.track_config = audio_->track();
      seq_.add(slot, std::move(item));
      encoding_ = true;
    }
  }
  if (audio_ && !audio_->set_source(track, &error))
    log::warn("transcode", "source audio not decodable: not carried", {{"stream", stream_}, {"error", error}});
  else if (audio_)
    log::info("transcode", "audio re-encoded to AAC-LC 48 kHz stereo",
              {{"stream", stream_},
               {"profile", "passthrough"},
               {"codec", media::codec_name(track.codec)},
               {"sample_rate", track.audio ? track.audio->sample_rate : track.timescale}});
  seq_.done(slot);
}

void PassthroughAudio::audio_frame(std::uint64_t slot, media::MediaFrame frame) {
  CpuTime cpu(cpu_ns_);
  if (audio_ && !*stopping_) {
    std::vector<media::MediaFrame> out;
    audio_->push(frame, out);
    audio_frames_.fetch_add(std::int64_t(out.size()), std::memory_order_relaxed);
    for (auto& m : out) {
      SeqItem item;
      item.media = std::move(m);
      seq_.add(slot, std::move(item));
    }
  }
  queued_.fetch_sub(1, std::memory_order_relaxed);
  seq_.done(slot);
}

void PassthroughAudio::audio_flush(std::uint64_t slot) {
  CpuTime cpu(cpu_ns_);
  if (audio_ && !*stopping_) {
    std::vector<media::MediaFrame> out;
    audio_->flush(out);
    audio_frames_.fetch_add(std::int64_t(out.size()), std::memory_order_relaxed);
    for (auto& m : out) {
      SeqItem item;
      item.media = std::move(m);
      seq_.add(slot, std::move(item));
    }
  }
  audio_.reset();
  audio_failed_ = false;
  seq_.done(slot);
}

std::optional<StreamStats> PassthroughAudio::stats() const {
  if (!encoding_) return std::nullopt;
  StreamStats s;
  s.stream = stream_;
  s.profile = "passthrough";
  s.speed = 1;  // the video is not transcoded: nothing falls behind but the audio queue
  s.cpu_seconds = double(cpu_ns_.load(std::memory_order_relaxed)) / 1e9;
  s.queue_frames = std::int64_t(queued_.load(std::memory_order_relaxed));
  s.skipped_frames = skipped_.load(std::memory_order_relaxed);
  s.audio_transcoded = true;
  s.audio_frames = audio_frames_.load(std::memory_order_relaxed);
  return s;
}

void PassthroughAudio::emit(SeqItem& item) {
  if (item.kind == SeqItem::track)
    sink_->on_track(item.track_config);
  else if (item.kind == SeqItem::frame)
    sink_->on_frame(item.media);
  else
    sink_->on_withdraw(item.track_id);
}

}  // namespace sf::transcode
