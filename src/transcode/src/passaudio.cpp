#include "passaudio.h"

#include <boost/asio/post.hpp>

#include "sf/core/log.h"

namespace sf::transcode {

namespace asio = boost::asio;

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

void PassthroughAudio::emit(SeqItem& item) {
  if (item.kind == SeqItem::track)
    sink_->on_track(item.track_config);
  else if (item.kind == SeqItem::frame)
    sink_->on_frame(item.media);
  else
    sink_->on_withdraw(item.track_id);
}

}  // namespace sf::transcode
