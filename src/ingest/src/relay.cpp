#include "relay.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>

#include "sf/core/log.h"
#include "sf/media/flv.h"
#include "sf/net/deadlines.h"
#include "sf/rtmp/amf0.h"
#include "sf/rtmp/chunk.h"
#include "sf/rtmp/handshake.h"

namespace sf::ingest {

namespace asio = boost::asio;
namespace amf0 = rtmp::amf0;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kControlCsid = 2;
constexpr std::uint32_t kCommandCsid = 3;
constexpr std::uint32_t kAudioCsid = 4;
constexpr std::uint32_t kDataCsid = 5;
constexpr std::uint32_t kVideoCsid = 6;
constexpr std::uint32_t kOutChunkSize = 65536;
constexpr std::chrono::milliseconds kFirstBackoff{250};
// The arrival clock: arrivals noted during the publish's first seconds (as the origin's
// ArrivalClock marks them).
constexpr std::int64_t kClockWindowMs = 5000;

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One FLV tag body to send: a small prefix (codec header bytes) and the shared media payload.
struct Item {
  std::uint8_t type = 0;  // rtmp::kAudio / rtmp::kVideo / rtmp::kAmf0Data (the arrival clock)
  std::uint32_t timestamp = 0;
  std::array<std::byte, 16> prefix{};
  std::uint8_t prefix_size = 0;
  Bytes payload;
  bool keyframe = false;
  bool header = false;      // a sequence header, or a "@streamflex" message (not a frame)
  std::uint32_t epoch = 0;  // a frame's MediaFrame::epoch
  std::size_t size() const { return prefix_size + payload.size(); }
};

// FlvWriter writes [tag header + prefix][payload][previous tag size]: keep the header's type and
// timestamp and the prefix; the payload is the caller's shared buffer (matched by address).
class TagCapture {
 public:
  TagCapture() : writer_([this](ByteView piece) { take(piece); }) {}

  std::optional<Item> track(const media::TrackConfig& track, std::int64_t timestamp_ms) {
    begin(track.record);
    writer_.write_track(track, timestamp_ms);
    auto item = finish();
    if (item) {
      item->header = true;
      item->keyframe = true;
    }
    return item;
  }
  std::optional<Item> frame(const media::MediaFrame& frame) {
    begin(frame.data);
    writer_.write_frame(frame);
    auto item = finish();
    if (item) {
      item->keyframe = frame.keyframe;
      item->epoch = frame.epoch;
    }
    return item;
  }

 private:
  static constexpr std::size_t kTagHeader = 11;
  void begin(const Bytes& payload) {
    payload_ = payload;
    pieces_ = 0;
    got_ = Item{};
    ok_ = false;
  }
  void take(ByteView piece) {
    if (pieces_++ == 0) {
      if (piece.size() < kTagHeader || piece.size() - kTagHeader > got_.prefix.size()) return;
      const auto* p = reinterpret_cast<const std::uint8_t*>(piece.data());
      got_.type = p[0];
      got_.timestamp = std::uint32_t{p[4]} << 16 | std::uint32_t{p[5]} << 8 | p[6] | std::uint32_t{p[7]} << 24;
      got_.prefix_size = static_cast<std::uint8_t>(piece.size() - kTagHeader);
      std::memcpy(got_.prefix.data(), piece.data() + kTagHeader, got_.prefix_size);
      ok_ = true;
    } else if (piece.data() == payload_.data() && piece.size() == payload_.size()) {
      got_.payload = payload_;
    }
  }
  std::optional<Item> finish() {
    payload_ = {};
    if (!ok_) return std::nullopt;  // a codec FLV does not carry: nothing written
    return std::move(got_);
  }

  media::FlvWriter writer_;
  Bytes payload_;
  int pieces_ = 0;
  Item got_;
  bool ok_ = false;
};

std::array<std::byte, rtmp::kC0C1Size> make_c0c1() {
  std::array<std::byte, rtmp::kC0C1Size> c{};
  c[0] = std::byte{3};
  // C1: time (zero is allowed), four zero bytes (plain handshake), then random bytes.
  std::random_device rd;
  std::mt19937 gen(rd());
  for (std::size_t i = 9; i < c.size(); ++i) c[i] = static_cast<std::byte>(gen());
  return c;
}

std::string amf_string_at(const std::vector<amf0::Value>& args, std::size_t i) {
  return args.size() > i && args[i].string() ? *args[i].string() : std::string();
}

Item data_item(std::uint32_t timestamp, const std::vector<std::byte>& body) {
  Item it;
  it.type = rtmp::kAmf0Data;
  it.timestamp = timestamp;
  it.payload = Bytes::copy_of(ByteView(body.data(), body.size()));
  it.header = true;
  return it;
}

// ["@streamflex", {media_ms, arrival_ms}]: the frame at media_ms (the relayed timeline) arrived
// here at arrival_ms (see relay.h).
Item clock_item(std::uint32_t media_ms, std::int64_t arrival_ms) {
  return data_item(media_ms, relay_clock_message(media_ms, arrival_ms));
}

// One publish to one target. Publisher thread: on_track/on_frame/stop (under mu_). The link's
// context: everything else.
class Link final : public std::enable_shared_from_this<Link>, public net::Watched {
 public:
  Link(asio::io_context& ctx, RelayTarget target, std::string name, std::string stream, const Config& config,
       std::shared_ptr<RelayMetrics> metrics)
      : ctx_(ctx),
        target_(std::move(target)),
        name_(std::move(name)),
        stream_(std::move(stream)),
        max_queue_(static_cast<std::size_t>(config.relay_queue_bytes)),
        timeout_(config.relay_timeout),
        max_backoff_(config.relay_max_backoff),
        send_clock_(config.relay_clock),
        metrics_(std::move(metrics)),
        socket_(ctx),
        wake_(ctx) {}

  static void start(std::shared_ptr<Link> self) {
    auto& ctx = self->ctx_;
    asio::co_spawn(ctx, run(std::move(self)), asio::detached);
  }

  void on_track(const media::TrackConfig& track) {
    std::lock_guard lock(mu_);
    const bool video = track.type == media::MediaType::video;
    auto item = capture_.track(track, video ? last_video_ms_ : last_audio_ms_);
    if (!item) return;
    (video ? video_header_ : audio_header_) = *item;
    if (streaming_ && !stopped_) push(std::move(*item));
  }

  void on_frame(const media::MediaFrame& frame) {
    std::lock_guard lock(mu_);
    auto item = capture_.frame(frame);
    if (!item) return;
    const bool video = item->type == rtmp::kVideo;
    (video ? last_video_ms_ : last_audio_ms_) = item->timestamp;
    note_arrival(item->timestamp);
    if (stopped_) return;
    if (!streaming_) {
      keep_gop(std::move(*item));
      return;
    }
    if (need_keyframe_ && video_header_) {
      if (!video || !item->keyframe) {
        metrics_->dropped_frames.Increment();
        return;
      }
      need_keyframe_ = false;
    }
    if (queued_bytes_ + item->size() > max_queue_) {
      // The peer is slower than the publisher: drop what waits and resume at the next keyframe.
      std::uint64_t dropped = 1;
      for (auto& q : queue_)
        if (!q.header) ++dropped;
      metrics_->dropped_frames.Increment(static_cast<double>(dropped));
      if (!overflow_logged_) {
        log::warn("ingest", "relay peer too slow: frames dropped up to the next keyframe",
                  {{"stream", stream_}, {"target", target_.tc_url}, {"dropped", dropped}});
        overflow_logged_ = true;
      }
      queue_.clear();
      queued_bytes_ = 0;
      clock_queued_at_.reset();
      clock_sent_start_.reset();                    // a clock dropped with the queue goes again
      if (epoch_base_) epoch_sent_ = *epoch_base_;  // so may an epoch (the peer keeps the highest)
      requeue_headers();
      if (!(video && item->keyframe) && video_header_) {
        need_keyframe_ = true;
        return;
      }
    }
    queue_clock(item->timestamp);
    push_frame(std::move(*item));
  }

  void stop() {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    asio::post(ctx_, [self = shared_from_this()] {
      self->wake_.cancel();
      // Connecting or waiting to retry: end now. Publishing: the writer sends what is queued first.
      if (!self->publishing_) self->close_socket();
    });
  }

 private:
  // Deadlines: a connect, handshake, command answer or write that takes too long closes the socket.
  void expired() override {
    log::warn("ingest", "relay peer timed out", {{"stream", stream_}, {"target", target_.tc_url}});
    close_socket();
  }
  void close_socket() {
    boost::system::error_code ec;
    socket_.close(ec);
    wake_.cancel();
  }
  void watch() { net::Deadlines::of(ctx_.get_executor()).watch(*this, std::chrono::steady_clock::now() + timeout_); }
  void unwatch() { net::Deadlines::of(ctx_.get_executor()).unwatch(*this); }

  // Arrival clock (under mu_): the earliest implied start (arrival minus media time) of the
  // frames that arrived in the publish's first seconds, noted on the publisher's thread as they
  // arrive, whether or not the link is up.
  void note_arrival(std::uint32_t media_ms) {
    if (!send_clock_ || clock_settled_) return;
    auto now = wall_now_ms();
    if (clock_first_ms_ < 0) clock_first_ms_ = now;
    if (now - clock_first_ms_ > kClockWindowMs) {
      clock_settled_ = true;  // no clock reading per frame from here on
      return;
    }
    std::int64_t start = now - std::int64_t{media_ms};
    if (!clock_start_ || start < *clock_start_) clock_start_ = start;
  }
  // Queues the clock, expressed at `media_ms` (the frame about to follow), when the peer has not
  // been given this anchor yet. A clock still waiting in the queue is improved in place rather
  // than followed by another: a publisher's burst (each frame implying an earlier start) costs
  // one message per write to the peer, not one per frame, and the peer learns each improvement
  // before the frames that follow it, as it would have from their own arrival.
  void queue_clock(std::uint32_t media_ms) {
    if (!clock_start_ || (clock_sent_start_ && *clock_sent_start_ <= *clock_start_)) return;
    clock_sent_start_ = clock_start_;
    if (clock_queued_at_ && *clock_queued_at_ < queue_.size()) {
      Item& queued = queue_[*clock_queued_at_];
      queued.payload = clock_item(queued.timestamp, *clock_start_ + std::int64_t{queued.timestamp}).payload;
      return;
    }
    clock_queued_at_ = queue_.size();
    push(clock_item(media_ms, *clock_start_ + std::int64_t{media_ms}));
  }

  // Queues a frame, after ["@streamflex", {epoch}] when its epoch is higher than any the peer was
  // given on this connection (epochs counted from the connection's first frame: the peer's
  // publish starts at 0).
  void push_frame(Item item) {
    if (!epoch_base_) {
      epoch_base_ = item.epoch;
      epoch_sent_ = item.epoch;
    } else if (item.epoch > epoch_sent_) {
      epoch_sent_ = item.epoch;
      push(data_item(item.timestamp, relay_epoch_message(item.epoch - *epoch_base_)));
    }
    push(std::move(item));
  }
  void push(Item item) {
    queued_bytes_ += item.size();
    queue_.push_back(std::move(item));
    if (waiting_) {
      waiting_ = false;
      asio::post(ctx_, [self = shared_from_this()] { self->wake_.cancel(); });
    }
  }
  // While the link is not publishing: keep the current group of pictures (bounded by the queue
  // size), so a link that comes up starts at its keyframe instead of waiting for the next one.
  void keep_gop(Item item) {
    if (!video_header_) return;  // audio alone resumes with its next frame
    const bool key = item.type == rtmp::kVideo && item.keyframe;
    if (key) {
      gop_.clear();
      gop_bytes_ = 0;
    } else if (gop_.empty()) {
      return;
    }
    if (gop_bytes_ + item.size() > max_queue_) {
      gop_.clear();
      gop_bytes_ = 0;
      return;
    }
    gop_bytes_ += item.size();
    gop_.push_back(std::move(item));
  }
  // Queues the sequence headers, then the kept group of pictures if any (under mu_). The headers
  // carry the time of what follows them, so the peer's timeline never steps back.
  void requeue_headers_and_gop() {
    clock_sent_start_.reset();  // a new connection: the peer learns the clock before any media
    epoch_base_.reset();        // and its epochs count from its first frame
    if (gop_.empty()) {
      queue_clock(std::max(last_video_ms_, last_audio_ms_));
      requeue_headers();
      need_keyframe_ = video_header_.has_value();
      return;
    }
    const std::uint32_t at = gop_.front().timestamp;
    queue_clock(at);
    requeue_headers(at, at);
    for (auto& it : gop_) push_frame(std::move(it));
    gop_.clear();
    gop_bytes_ = 0;
    need_keyframe_ = false;
  }
  void requeue_headers() { requeue_headers(last_video_ms_, last_audio_ms_); }
  void requeue_headers(std::uint32_t video_ms, std::uint32_t audio_ms) {
    if (video_header_) {
      video_header_->timestamp = video_ms;
      queued_bytes_ += video_header_->size();
      queue_.push_back(*video_header_);
    }
    if (audio_header_) {
      audio_header_->timestamp = audio_ms;
      queued_bytes_ += audio_header_->size();
      queue_.push_back(*audio_header_);
    }
  }

  static asio::awaitable<void> run(std::shared_ptr<Link> self) {
    std::chrono::milliseconds backoff = kFirstBackoff;
    for (int attempt = 0;; ++attempt) {
      {
        std::lock_guard lock(self->mu_);
        if (self->stopped_) break;
      }
      if (attempt > 0) self->metrics_->reconnects.Increment();
      auto started = std::chrono::steady_clock::now();
      bool published = co_await self->session();
      {
        std::lock_guard lock(self->mu_);
        self->streaming_ = false;
        self->queue_.clear();
        self->queued_bytes_ = 0;
        self->clock_queued_at_.reset();
        if (self->stopped_) break;
      }
      // A connection that published for a while starts the backoff over.
      if (published && std::chrono::steady_clock::now() - started > 10s) backoff = kFirstBackoff;
      log::info("ingest", "relay reconnecting",
                {{"stream", self->stream_}, {"target", self->target_.tc_url}, {"in_ms", backoff.count()}});
      self->wake_.expires_after(backoff);
      boost::system::error_code ec;
      co_await self->wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, self->max_backoff_);
    }
    self->unwatch();
    self->close_socket();
  }

  // One connection: connect, handshake, commands, then media until the peer drops or the publish
  // ends. Returns whether the peer accepted the publish.
  asio::awaitable<bool> session() {
    boost::system::error_code ec;
    socket_ = asio::ip::tcp::socket(ctx_);
    in_.clear();
    // Answers are small: a peer that announces more than 1 MiB per message or chunk is not a server we talk to.
    reader_.emplace(rtmp::ChunkLimits{.max_message_size = 1024 * 1024, .max_chunk_size = 1024 * 1024});
    writer_ = rtmp::ChunkWriter();
    messages_.clear();
    next_message_ = 0;
    watch();
    asio::ip::tcp::resolver resolver(ctx_);
    auto endpoints = co_await resolver.async_resolve(target_.host, std::to_string(target_.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_await asio::async_connect(socket_, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("connect", ec.message());
    // RTMP 5.2: C0+C1, then S0+S1+S2, then C2 (an echo of S1).
    auto c0c1 = make_c0c1();
    co_await asio::async_write(socket_, asio::buffer(c0c1), asio::redirect_error(asio::use_awaitable, ec));
    std::vector<std::byte> s(rtmp::kS0S1S2Size);
    if (!ec) co_await asio::async_read(socket_, asio::buffer(s), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("handshake", ec.message());
    if (s[0] != std::byte{3}) co_return failed("handshake", "peer answered with another RTMP version");
    co_await asio::async_write(socket_, asio::buffer(s.data() + 1, rtmp::kHandshakeSize),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("handshake", ec.message());

    out_.clear();
    writer_.set_chunk_size(kOutChunkSize, out_);
    command(0, {"connect", 1,
                amf0::Object{{"app", target_.app},
                             {"type", "nonprivate"},
                             {"flashVer", "FMLE/3.0 (compatible; StreamFlex relay)"},
                             {"tcUrl", target_.tc_url}}});
    if (!co_await flush()) co_return failed("connect", "write failed");
    auto reply = co_await answer(1);
    if (!reply || amf_string_at(*reply, 0) != "_result") co_return failed("connect", describe(reply));
    command(0, {"releaseStream", 2, amf0::Value::null(), name_});
    command(0, {"FCPublish", 3, amf0::Value::null(), name_});
    command(0, {"createStream", 4, amf0::Value::null()});
    if (!co_await flush()) co_return failed("createStream", "write failed");
    reply = co_await answer(4);
    if (!reply || amf_string_at(*reply, 0) != "_result" || reply->size() < 4 || !(*reply)[3].number())
      co_return failed("createStream", describe(reply));
    stream_id_ = static_cast<std::uint32_t>(*(*reply)[3].number());
    command(stream_id_, {"publish", 5, amf0::Value::null(), name_, "live"});
    if (!co_await flush()) co_return failed("publish", "write failed");
    reply = co_await status();
    std::string code;
    if (reply && reply->size() > 3)
      if (auto* c = (*reply)[3].get("code"); c && c->string()) code = *c->string();
    if (code != "NetStream.Publish.Start") co_return failed("publish", code.empty() ? describe(reply) : code);
    unwatch();

    metrics_->connects.Increment();
    metrics_->links_up.Increment();
    log::info("ingest", "relay publishing", {{"stream", stream_}, {"target", target_.tc_url}});
    {
      std::lock_guard lock(mu_);
      streaming_ = true;
      publishing_ = true;
      queue_.clear();
      queued_bytes_ = 0;
      clock_queued_at_.reset();
      requeue_headers_and_gop();
    }
    asio::co_spawn(ctx_, drain(shared_from_this()), asio::detached);
    co_await send_media();
    publishing_ = false;
    metrics_->links_up.Decrement();
    close_socket();
    co_return true;
  }

  asio::awaitable<void> send_media() {
    std::vector<Item> batch;
    rtmp::ChunkPlan plan;
    std::vector<asio::const_buffer> buffers;
    bool stopping = false;
    while (socket_.is_open()) {
      batch.clear();
      {
        std::lock_guard lock(mu_);
        while (!queue_.empty()) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        queued_bytes_ = 0;
        clock_queued_at_.reset();  // taken: an improvement goes as a new message
        stopping = stopped_;
        if (batch.empty() && !stopping) waiting_ = true;
      }
      if (batch.empty()) {
        if (stopping) break;
        wake_.expires_at(asio::steady_timer::time_point::max());
        boost::system::error_code ec;
        co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        std::lock_guard lock(mu_);
        waiting_ = false;
        continue;
      }
      plan.clear();
      out_.clear();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const Item& it = batch[i];
        const std::uint32_t csid = it.type == rtmp::kVideo   ? kVideoCsid
                                   : it.type == rtmp::kAudio ? kAudioCsid
                                                             : kDataCsid;
        writer_.plan(csid, it.type, stream_id_, it.timestamp, ByteView(it.prefix.data(), it.prefix_size), it.payload,
                     static_cast<int>(i), plan);
      }
      buffers.clear();
      std::size_t bytes = 0;
      for (const auto& p : plan.pieces) {
        const std::byte* base =
            p.source < 0 ? plan.bytes.data() : batch[static_cast<std::size_t>(p.source)].payload.data();
        buffers.emplace_back(base + p.offset, p.size);
        bytes += p.size;
      }
      if (!co_await write(buffers)) co_return;
      metrics_->sent_bytes.Increment(static_cast<double>(bytes));
    }
    if (!socket_.is_open()) co_return;
    // The publish ended: unpublish politely, as encoders do.
    out_.clear();
    command(0, {"FCUnpublish", 6, amf0::Value::null(), name_});
    command(0, {"deleteStream", 7, amf0::Value::null(), static_cast<double>(stream_id_)});
    co_await flush();
  }

  // After publish: read and ignore what the peer sends (acknowledgements, pings, status), so its
  // window never fills; a read error or EOF ends the connection.
  static asio::awaitable<void> drain(std::shared_ptr<Link> self) {
    std::array<std::byte, 4096> buf;
    boost::system::error_code ec;
    while (self->socket_.is_open()) {
      co_await self->socket_.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (self->publishing_)
          log::warn("ingest", "relay peer closed the connection",
                    {{"stream", self->stream_}, {"target", self->target_.tc_url}, {"error", ec.message()}});
        self->close_socket();
        break;
      }
    }
  }

  void command(std::uint32_t stream_id, std::initializer_list<amf0::Value> values) {
    std::vector<std::byte> body;
    amf0::encode_all(values, body);
    writer_.write(kCommandCsid, rtmp::kAmf0Command, stream_id, 0, body, out_);
  }

  asio::awaitable<bool> write(const std::vector<asio::const_buffer>& buffers) {
    boost::system::error_code ec;
    watch();
    co_await asio::async_write(socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
    unwatch();
    if (ec) {
      log::warn("ingest", "relay write failed",
                {{"stream", stream_}, {"target", target_.tc_url}, {"error", ec.message()}});
      close_socket();
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<bool> flush() {
    std::vector<asio::const_buffer> b{asio::buffer(out_)};
    bool ok = co_await write(b);
    out_.clear();
    co_return ok;
  }

  // The next AMF0 command from the peer.
  asio::awaitable<std::optional<std::vector<amf0::Value>>> next_command() {
    for (;;) {
      while (next_message_ < messages_.size()) {
        const auto& m = messages_[next_message_++];
        if (m.type != rtmp::kAmf0Command) continue;  // window, bandwidth, chunk size, user control
        auto args = amf0::decode(m.body);
        if (!args) co_return std::nullopt;
        co_return std::move(*args);
      }
      messages_.clear();
      next_message_ = 0;
      std::array<std::byte, 4096> buf;
      boost::system::error_code ec;
      auto n = co_await socket_.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return std::nullopt;
      in_.insert(in_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      if (in_.size() > 2 * 1024 * 1024) co_return std::nullopt;
      auto used = reader_->feed(in_, messages_);
      if (!used) co_return std::nullopt;
      in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(*used));
    }
  }

  // The _result or _error of transaction `txn` (other commands, such as onBWDone, are skipped).
  asio::awaitable<std::optional<std::vector<amf0::Value>>> answer(double txn) {
    for (int i = 0; i < 32; ++i) {
      auto c = co_await next_command();
      if (!c) co_return c;
      auto name = amf_string_at(*c, 0);
      if ((name == "_result" || name == "_error") && c->size() > 1 && (*c)[1].number() && *(*c)[1].number() == txn)
        co_return c;
    }
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<std::vector<amf0::Value>>> status() {
    for (int i = 0; i < 32; ++i) {
      auto c = co_await next_command();
      if (!c) co_return c;
      auto name = amf_string_at(*c, 0);
      if (name == "onStatus" || name == "_error") co_return c;
    }
    co_return std::nullopt;
  }

  static std::string describe(const std::optional<std::vector<amf0::Value>>& reply) {
    if (!reply) return "no answer";
    std::string out = amf_string_at(*reply, 0);
    for (const auto& v : *reply)
      if (auto* c = v.get("code"); c && c->string()) out += " " + *c->string();
    return out;
  }

  bool failed(const char* step, const std::string& why) {
    unwatch();
    metrics_->connect_failures.Increment();
    log::warn("ingest", "relay connection failed",
              {{"stream", stream_}, {"target", target_.tc_url}, {"step", step}, {"error", why}});
    close_socket();
    return false;
  }

  asio::io_context& ctx_;
  const RelayTarget target_;
  const std::string name_;  // may carry the relay secret: never logged
  const std::string stream_;
  const std::size_t max_queue_;
  const std::chrono::milliseconds timeout_;
  const std::chrono::milliseconds max_backoff_;
  const bool send_clock_;
  std::shared_ptr<RelayMetrics> metrics_;

  // Shared with the publisher thread, under mu_.
  std::mutex mu_;
  TagCapture capture_;
  std::deque<Item> queue_;
  std::size_t queued_bytes_ = 0;
  std::vector<Item> gop_;  // while not publishing: since the last keyframe
  std::size_t gop_bytes_ = 0;
  std::optional<Item> video_header_;
  std::optional<Item> audio_header_;
  std::uint32_t last_video_ms_ = 0;
  std::uint32_t last_audio_ms_ = 0;
  bool stopped_ = false;
  bool streaming_ = false;  // the peer takes media: frames queue
  bool need_keyframe_ = false;
  bool waiting_ = false;  // the writer waits on wake_
  bool overflow_logged_ = false;
  std::int64_t clock_first_ms_ = -1;              // wall clock of the first frame
  std::optional<std::int64_t> clock_start_;       // earliest implied start, ms since the epoch
  std::optional<std::int64_t> clock_sent_start_;  // what this connection's peer was last given
  std::optional<std::size_t> clock_queued_at_;    // index in queue_ of a clock not yet taken by the writer
  bool clock_settled_ = false;                    // past the window: clock_start_ is final
  std::optional<std::uint32_t> epoch_base_;       // the epoch of this connection's first frame
  std::uint32_t epoch_sent_ = 0;                  // the highest epoch queued for the peer

  // The link's context only.
  asio::ip::tcp::socket socket_;
  asio::steady_timer wake_;
  bool publishing_ = false;
  std::optional<rtmp::ChunkReader> reader_;
  rtmp::ChunkWriter writer_;
  std::vector<std::byte> in_;
  std::vector<std::byte> out_;
  std::vector<rtmp::Message> messages_;
  std::size_t next_message_ = 0;
  std::uint32_t stream_id_ = 1;
};

class RelayHandler final : public PublishHandler {
 public:
  explicit RelayHandler(std::vector<std::shared_ptr<Link>> links) : links_(std::move(links)) {}
  ~RelayHandler() override {
    for (auto& l : links_) l->stop();
  }
  void on_track(const media::TrackConfig& track) override {
    for (auto& l : links_) l->on_track(track);
  }
  void on_frame(const media::MediaFrame& frame) override {
    for (auto& l : links_) l->on_frame(frame);
  }
  void on_stop(std::string_view) override {
    for (auto& l : links_) l->stop();
  }

 private:
  std::vector<std::shared_ptr<Link>> links_;
};

}  // namespace

Result<RelayTarget> parse_relay_url(std::string_view url) {
  constexpr std::string_view kScheme = "rtmp://";
  if (!url.starts_with(kScheme)) return fail(errc::invalid_argument);
  std::string_view rest = url.substr(kScheme.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return fail(errc::invalid_argument);
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  RelayTarget t;
  std::string_view port_text;
  if (hostport.starts_with('[')) {  // [v6]:port
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return fail(errc::invalid_argument);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return fail(errc::invalid_argument);
      port_text = hostport.substr(close + 2);
      if (port_text.empty()) return fail(errc::invalid_argument);
    }
    hostport = hostport.substr(1, close - 1);
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    port_text = hostport.substr(colon + 1);
    if (port_text.empty()) return fail(errc::invalid_argument);
    hostport = hostport.substr(0, colon);
  }
  if (!port_text.empty()) {
    int port = 0;
    for (char ch : port_text) {
      if (ch < '0' || ch > '9' || port > 65535) return fail(errc::invalid_argument);
      port = port * 10 + (ch - '0');
    }
    if (port <= 0 || port > 65535) return fail(errc::invalid_argument);
    t.port = static_cast<std::uint16_t>(port);
  }
  if (hostport.empty()) return fail(errc::invalid_argument);
  t.host = std::string(hostport);
  auto name_at = path.find('/');
  t.app = std::string(path.substr(0, name_at));
  t.name = name_at == std::string_view::npos ? "{stream}" : std::string(path.substr(name_at + 1));
  if (t.app.empty() || t.name.empty()) return fail(errc::invalid_argument);
  t.tc_url = std::string(url.substr(0, kScheme.size() + slash + 1)) + t.app;
  return t;
}

std::string relay_publish_name(const RelayTarget& target, std::string_view stream, std::string_view secret) {
  std::string name = target.name;
  for (auto at = name.find("{stream}"); at != std::string::npos; at = name.find("{stream}", at + stream.size()))
    name.replace(at, 8, stream);
  if (!secret.empty()) {
    name += ':';
    name += secret;
  }
  return name;
}

std::vector<std::byte> relay_clock_message(std::uint32_t media_ms, std::int64_t arrival_ms) {
  std::vector<std::byte> body;
  amf0::encode_all({"@streamflex", amf0::Object{{"media_ms", static_cast<double>(media_ms)},
                                                {"arrival_ms", static_cast<double>(arrival_ms)}}},
                   body);
  return body;
}

std::vector<std::byte> relay_epoch_message(std::uint32_t epoch) {
  std::vector<std::byte> body;
  amf0::encode_all({"@streamflex", amf0::Object{{"epoch", static_cast<double>(epoch)}}}, body);
  return body;
}

std::optional<RelayMessage> parse_relay_message(const std::vector<amf0::Value>& args) {
  if (args.empty() || !args[0].string() || *args[0].string() != "@streamflex") return std::nullopt;
  RelayMessage msg;
  if (args.size() < 2) return msg;
  auto number = [&args](std::string_view key) -> std::optional<double> {
    const amf0::Value* v = args[1].get(key);
    if (!v || !v->number()) return std::nullopt;
    return *v->number();
  };
  auto media = number("media_ms"), arrival = number("arrival_ms");
  if (media && arrival && *media >= 0 && *media <= 4294967295.0 && *arrival > 0 && *arrival < 1e15) {
    msg.media_ms = static_cast<std::int64_t>(*media);
    msg.arrival_ms = static_cast<std::int64_t>(*arrival);
  }
  if (auto epoch = number("epoch"); epoch && *epoch >= 0 && *epoch <= 4294967295.0)
    msg.epoch = static_cast<std::uint32_t>(*epoch);
  return msg;
}

std::string relay_settings_query(const PublishInfo& info) {
  std::string q;
  auto add = [&q](std::string_view key, std::string_view value) {
    if (!q.empty()) q += '&';
    q += key;
    q += '=';
    q += value;
  };
  bool plain =
      !info.profile.empty() && info.profile.size() <= 64 &&
      std::all_of(info.profile.begin(), info.profile.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      });
  if (plain) add("profile", info.profile);
  if (info.latency == "ll-hls" || info.latency == "hls") add("latency", info.latency);
  if (info.part_target_ms > 0) add("part_ms", std::to_string(info.part_target_ms));
  if (info.segment_target_ms > 0) add("segment_ms", std::to_string(info.segment_target_ms));
  return q;
}

RelayMetrics::RelayMetrics(prometheus::Registry& r)
    : connects(prometheus::BuildCounter()
                   .Name("streamflex_ingest_relay_connects_total")
                   .Help("Relay connections whose publish a peer accepted")
                   .Register(r)
                   .Add({})),
      connect_failures(prometheus::BuildCounter()
                           .Name("streamflex_ingest_relay_connect_failures_total")
                           .Help("Relay connection attempts that failed before publishing")
                           .Register(r)
                           .Add({})),
      reconnects(prometheus::BuildCounter()
                     .Name("streamflex_ingest_relay_reconnects_total")
                     .Help("Relay connection attempts after a link's first")
                     .Register(r)
                     .Add({})),
      dropped_frames(
          prometheus::BuildCounter()
              .Name("streamflex_ingest_relay_dropped_frames_total")
              .Help("Frames not relayed: the peer was too slow, or a (re)connected link waited for a keyframe")
              .Register(r)
              .Add({})),
      sent_bytes(prometheus::BuildCounter()
                     .Name("streamflex_ingest_relay_sent_bytes_total")
                     .Help("Media bytes written to relay peers")
                     .Register(r)
                     .Add({})),
      links_up(prometheus::BuildGauge()
                   .Name("streamflex_ingest_relay_links_up")
                   .Help("Relay links publishing to their peer now")
                   .Register(r)
                   .Add({})) {}

Relay::Relay(net::IoPool& pool, const Config& config, Metrics& metrics)
    : pool_(pool), config_(config), metrics_(std::make_shared<RelayMetrics>(metrics.registry())) {
  const std::string& list = config.relay;
  for (std::size_t at = 0; at < list.size();) {
    auto comma = list.find(',', at);
    auto item = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) {
      auto t = parse_relay_url(item);
      if (!t) throw std::invalid_argument("ingest.relay: expected rtmp://host[:port]/app[/name], got " + item);
      targets_.push_back(std::move(*t));
    }
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
}

Relay::~Relay() = default;

std::unique_ptr<PublishHandler> Relay::on_publish_start(const PublishInfo& info) {
  if (targets_.empty()) return nullptr;
  std::vector<std::shared_ptr<Link>> links;
  const std::string settings = config_.relay_secret.empty() ? std::string() : relay_settings_query(info);
  for (const auto& t : targets_) {
    auto name = relay_publish_name(t, info.stream, config_.relay_secret);
    if (!settings.empty()) name += (name.find('?') == std::string::npos ? "?" : "&") + settings;
    auto link = std::make_shared<Link>(pool_.next(), t, std::move(name), info.stream, config_, metrics_);
    Link::start(link);
    links.push_back(std::move(link));
  }
  return std::make_unique<RelayHandler>(std::move(links));
}

}  // namespace sf::ingest
