// The audio half of a ladder: a source's audio (MP3, Opus, AC-3, E-AC-3, FLAC, AAC of any rate and
// layout; more than two channels are downmixed) decoded once and encoded once to AAC-LC 48 kHz
// stereo with libavcodec's native `aac` encoder (through libswresample), shared by every rung.
// Output timestamps count 1024-sample frames on the source's timeline: anchored at the source's
// first sample, then advanced by the samples actually encoded (no drift from millisecond-rounded
// FLV times), re-anchored only when the source's time jumps by more than 100 ms. The encoder's
// priming frame (libavcodec stamps it 1024 samples before the first input sample) is left out, so
// every emitted frame decodes to source time at its pts.
// Source discontinuities (MediaFrame::epoch): the encoded frames carry the epoch of the samples
// they start with, so the first one whose samples all come from a higher epoch carries it (the
// packager starts the discontinuity there; the frame across the boundary keeps the old epoch).
// Private to the transcode component; one thread at a time.
#pragma once

extern "C" {
#include <libavutil/audio_fifo.h>
#include <libswresample/swresample.h>
}

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "av.h"
#include "sf/media/frame.h"

namespace sf::transcode {

constexpr std::uint32_t kAacRate = 48000;
constexpr std::uint32_t kAacFrame = 1024;

struct SwrFree {
  void operator()(SwrContext* s) const { swr_free(&s); }
};
struct AudioFifoFree {
  void operator()(AVAudioFifo* f) const { av_audio_fifo_free(f); }
};

class AudioTranscoder {
 public:
  // Fails (reason in *error) if the AAC encoder does not open.
  static std::unique_ptr<AudioTranscoder> make(std::uint32_t track_id, std::int64_t bitrate, std::string* error);

  // The output track: AAC-LC, 48 kHz, stereo, its AudioSpecificConfig from the encoder.
  const media::TrackConfig& track() const { return track_; }

  // A new source configuration (first, or changed mid-stream): a new decoder; the encoder and the
  // output timeline carry on. Fails (reason in *error) if there is no decoder for the codec.
  bool set_source(const media::TrackConfig& source, std::string* error);
  // One source frame (times in the source track's timescale); encoded AAC frames are appended.
  void push(const media::MediaFrame& frame, std::vector<media::MediaFrame>& out);
  // The end: what is buffered goes out (the last frame short), then the encoder's delay.
  void flush(std::vector<media::MediaFrame>& out);

  std::int64_t undecodable() const { return undecodable_; }
  std::int64_t reanchored() const { return reanchored_; }

 private:
  void resample(const AVFrame* in, std::vector<media::MediaFrame>& out);
  void encode(const AVFrame* frame, std::vector<media::MediaFrame>& out);

  media::TrackConfig track_;
  CodecContextPtr decoder_, encoder_;
  std::unique_ptr<SwrContext, SwrFree> swr_;
  int swr_rate_ = 0, swr_fmt_ = -1, swr_channels_ = 0;
  std::unique_ptr<AVAudioFifo, AudioFifoFree> fifo_;
  PacketPtr packet_;
  FramePtr decoded_, enc_frame_;
  std::vector<std::vector<float>> planes_;
  std::vector<const std::uint8_t*> src_ptrs_;
  std::uint32_t src_rate_ = 0;
  std::int64_t expect_src_ = INT64_MIN;  // source time of the next decoded sample
  std::int64_t next_out_ = INT64_MIN;    // output time (1/48000) of the fifo's first sample
  std::int64_t first_out_ = INT64_MIN;   // output time of the first sample: earlier packets are priming
  std::int64_t last_out_ = INT64_MIN;
  std::int64_t undecodable_ = 0, reanchored_ = 0;
  // Epochs: the highest one pushed and the source time of its first frame, until its first
  // decoded samples are placed; then (output time of that first sample, epoch) until the encoder
  // emits a frame from there; the epoch of the frames out.
  std::uint32_t epoch_in_ = 0, epoch_out_ = 0;
  std::optional<std::int64_t> epoch_src_;
  std::deque<std::pair<std::int64_t, std::uint32_t>> epoch_rises_;
};

}  // namespace sf::transcode
