// CMAF / fragmented-MP4 parser (ISO/IEC 14496-12 §4.2, §8.8; ISO/IEC 23000-19 §7): a CMAF header
// (init segment) back into TrackConfigs, and CMAF segments or chunks (moof+mdat) into MediaFrames.
// What an ingest peer (DASH-IF Live Media Ingest, ffmpeg dash/hls/mp4 muxers) PUTs or POSTs.
// Pure functions over the caller's bytes: any thread, never throw, never read outside the input.
// Nothing is copied: TrackConfig::record and MediaFrame::data are share()d slices of `data`, so
// they keep its block alive after the call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"
#include "sf/media/frame.h"

namespace sf::cmaf {

// Frames one parse_fragments() call may return; more is errc::limit_exceeded.
constexpr std::size_t kMaxFramesPerCall = 100000;

struct InitSegment;

// ftyp? + moov (other top-level boxes are ignored). One TrackConfig per trak whose stsd holds a
// supported sample entry: avc1/avc3+avcC, hvc1/hev1+hvcC, av01+av1C (hdlr vide), mp4a+esds with
// an AudioSpecificConfig (hdlr soun); other entries are skipped. TrackConfig: track_id from tkhd,
// timescale 90000 (video) or the AudioSpecificConfig sample rate (audio), version 1, record = the
// avcC/hvcC/av1C body or the DecoderSpecificInfo. Errors: errc::malformed for broken box
// structure or a supported entry with a broken configuration record; errc::unsupported when no
// trak has a supported entry; errc::limit_exceeded above 256 supported tracks.
Result<InitSegment> parse_init_segment(const Bytes& data);

// Any sequence of top-level boxes; moof+mdat pairs give frames, everything else (styp, sidx,
// prft, emsg, ftyp, moov, ...) is ignored, as are trafs of tracks `init` does not hold. Frames of
// every traf in file order, each sample inside the mdat that follows its moof. dts = tfdt (or, if
// a traf has none, where the track's previous traf in this call ended, else 0) + the durations
// before it; pts = dts + composition offset; both rescaled from the mdhd timescale to
// TrackConfig::timescale, rounded to nearest. Video keyframe = sample_is_non_sync_sample clear;
// audio frames are all keyframes. Edit lists (elst) are not applied here: see
// InitSegment::presentation_offsets.
// Errors: errc::malformed (bad box sizes, sample outside its mdat, overflowing times),
// errc::truncated (a moof without its mdat), errc::limit_exceeded (over kMaxFramesPerCall).
Result<std::vector<media::MediaFrame>> parse_fragments(const Bytes& data, const InitSegment& init);

// Edit-list offsets larger than this (either way) are ignored: see presentation_offsets.
constexpr std::chrono::milliseconds kMaxPresentationOffset{1000};

struct InitSegment {
  std::vector<media::TrackConfig> tracks;
  // Per track, in the order of `tracks`: what its edit list (edts/elst, 14496-12 §8.6.6) adds to
  // the times parse_fragments() gives, in TrackConfig::timescale ticks, so that tracks line up
  // in presentation: leading empty edits minus the first media edit's media_time (e.g. -1024
  // samples of AAC priming, or minus the B-frame reordering delay). 0 without an edit list or
  // beyond kMaxPresentationOffset.
  std::vector<std::int64_t> presentation_offsets;

 private:
  friend Result<InitSegment> parse_init_segment(const Bytes& data);
  friend Result<std::vector<media::MediaFrame>> parse_fragments(const Bytes& data, const InitSegment& init);

  // What fragments need from the moov that TrackConfig does not carry. An InitSegment built by
  // hand (tracks only) parses fragments with media timescale = TrackConfig::timescale and zero
  // trex defaults.
  struct FragmentDefaults {
    std::uint32_t track_id = 0;
    std::uint32_t media_timescale = 0;  // mdhd
    std::uint32_t sample_duration = 0;  // trex defaults (14496-12 §8.8.3)
    std::uint32_t sample_size = 0;
    std::uint32_t sample_flags = 0;
  };
  std::vector<FragmentDefaults> defaults_;
};

}  // namespace sf::cmaf
