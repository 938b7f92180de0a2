// CMAF (ISO/IEC 23000-19) fragmented-MP4 writer: a track's CMAF header (init segment) and its
// chunks (one moof+mdat each). Stateless pure functions: any thread. The caller keeps the mfhd
// sequence number and the next decode time; see SPECS §8.
// A Chunk never copies media: its payload holds the frames' own Bytes, so sending it is a gather
// write of `header` followed by each payload slice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"
#include "sf/media/frame.h"

namespace sf::cmaf {

// ftyp + moov for one track (track_ID = track.track_id, mdhd timescale = track.timescale), with
// the codec configuration record written as received: avc1+avcC, hvc1+hvcC, av01+av1C, mp4a+esds.
// Errors: errc::unsupported for other codecs, errc::invalid_argument for a track without its
// record or parsed video/audio configuration.
Result<Bytes> write_init_segment(const media::TrackConfig& track);

struct Chunk {
  Bytes header;                // [styp] moof and the mdat box header
  std::vector<Bytes> payload;  // the frames' data, in order: the mdat body
  std::size_t size() const;
};

// One CMAF chunk holding `frames` (decode order, all of `track`). Each sample lasts until the next
// frame's dts, the last one until `next_dts`. `sequence_number` goes into mfhd (+1 per chunk);
// `with_styp` prefixes a styp (first chunk of a segment).
Chunk write_chunk(const media::TrackConfig& track, std::uint32_t sequence_number,
                  std::span<const media::MediaFrame> frames, std::int64_t next_dts, bool with_styp);

}  // namespace sf::cmaf
