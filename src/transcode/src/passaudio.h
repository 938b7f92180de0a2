// A passthrough stream's input: video, AAC audio and anything else go to the sink untouched; a
// source audio track that is not AAC (MP3, Opus, AC-3, E-AC-3, FLAC), or any audio when
// transcode.audio=aac, is decoded and encoded once to AAC-LC 48 kHz stereo by an AudioTranscoder
// on a strand of the transcoder's worker pool (never on the publisher's I/O thread), timed on the
// source's timeline as in a ladder. A Sequencer keeps the sink's calls in input order: a video
// frame that arrives while audio before it is still being encoded waits for it. At most
// `max_queue` audio frames wait for the strand; beyond that source audio frames are skipped
// (counted in skipped_frames, logged once per episode). The sink is called by one thread at a time (the input
// thread or a worker). on_track/on_frame/finish: one thread at a time (the publisher's).
#pragma once

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "audio.h"
#include "sequencer.h"
#include "sf/transcode/transcoder.h"

namespace sf::transcode {

class PassthroughAudio final : public std::enable_shared_from_this<PassthroughAudio> {
 public:
  PassthroughAudio(boost::asio::thread_pool& pool, std::string stream, std::shared_ptr<Sink> sink,
                   std::shared_ptr<std::atomic<bool>> stopping, bool audio_always, std::size_t max_queue);

  void on_track(const media::TrackConfig& track);
  void on_frame(const media::MediaFrame& frame);
  // The end of the stream: the encoder's buffered audio goes out, then the sink is let go.
  void finish();

  // Once its audio is being encoded (else nullopt: nothing of the stream's is the pool's work).
  std::optional<StreamStats> stats() const;

 private:
  void forward(SeqItem item);  // input thread: one slot, ready at once
  void audio_source(std::uint64_t slot, media::TrackConfig track);
  void audio_frame(std::uint64_t slot, media::MediaFrame frame);
  void audio_flush(std::uint64_t slot);
  void emit(SeqItem& item);

  std::string stream_;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<std::atomic<bool>> stopping_;
  bool audio_always_;
  std::size_t max_queue_;
  boost::asio::strand<boost::asio::thread_pool::executor_type> strand_;
  Sequencer seq_;

  // Input thread.
  bool transcode_ = false;
  std::uint32_t audio_track_id_ = 0;
  bool skipping_ = false;

  // Strand.
  std::unique_ptr<AudioTranscoder> audio_;
  bool audio_failed_ = false;

  std::atomic<bool> encoding_{false};   // an AudioTranscoder was made (strand), for stats
  std::atomic<std::size_t> queued_{0};  // audio frames posted to the strand, not yet encoded
  std::atomic<std::int64_t> skipped_{0}, audio_frames_{0}, cpu_ns_{0};
};

}  // namespace sf::transcode
