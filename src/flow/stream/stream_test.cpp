// TcpStream: ordering, overlap policies, retransmission checks, gaps, limits and sequence
// wraparound, by hand-built segment tables; then real captures against other tools' output.
#include "l45/flow/stream.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "l45/io/pcap_file.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/decode.hpp"
#include "testing.hpp"

// Counts heap allocations made while `g_counting` is set (this binary only), so a test can
// claim "no heap".
namespace {
bool g_counting = false;
uint64_t g_allocations = 0;
}  // namespace
// These replace the global allocation functions to count heap use, so free() here pairs with
// the malloc() above: g++'s -Wmismatched-new-delete cannot see that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
// Arrays too (the history ring is one): sanitizers replace operator new[] on their own, so it
// does not reach the operator new above by default.
void* operator new[](size_t n) {
  return operator new(n);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace l45 {
namespace {

namespace fs = std::filesystem;
using tcp_flag::kFin;
using tcp_flag::kSyn;

Bytes text(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
std::string str(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

struct Gap {
  uint64_t offset, length;
  friend bool operator==(const Gap&, const Gap&) = default;
};
struct Mismatch {
  uint64_t offset, length;
  std::string original, replacement;
};

// Records everything; a gap shows in `data` as '#' bytes so one string says the whole story.
struct Collect : StreamSink {
  std::string data;
  std::vector<Gap> gaps;
  std::vector<Mismatch> mismatches;
  uint64_t calls = 0;
  bool keep = true;
  uint64_t seen = 0;
  void on_data(uint64_t off, Bytes b) override {
    EXPECT_EQ(off, seen) << "delivery must be contiguous";
    seen = off + b.size();
    ++calls;
    if (keep) data += str(b);
  }
  void on_gap(uint64_t off, uint64_t len) override {
    EXPECT_EQ(off, seen);
    seen = off + len;
    gaps.push_back({off, len});
    if (keep) data.append(len, '#');
  }
  void on_mismatch(const StreamMismatch& m) override {
    mismatches.push_back({m.offset, m.length, str(m.original), str(m.replacement)});
  }
};

struct Seg {
  uint32_t seq;
  uint8_t flags;
  std::string payload;
};

StreamConfig cfg_with(OverlapPolicy p) {
  StreamConfig c;
  c.policy = p;
  return c;
}

TEST(TcpStream, IdleStreamIsSmall) {
  // The engine holds two per connection: ~512 bytes per idle TCP flow in all (see the header).
  EXPECT_LE(sizeof(TcpStream), 72u) << sizeof(TcpStream);
  std::cout << "sizeof(TcpStream) = " << sizeof(TcpStream) << "\n";
}

TEST(TcpStream, InOrderSegmentsAreDeliveredAtOnceWithoutBuffering) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.add(TcpSeq(1000), kSyn, {}, out);
  EXPECT_EQ(s.add(TcpSeq(1001), 0, text("hello "), out), DropReason::None);
  EXPECT_EQ(out.data, "hello ");  // before the next segment: delivered at once
  s.add(TcpSeq(1007), 0, text("world"), out);
  EXPECT_EQ(out.data, "hello world");
  EXPECT_EQ(s.buffered_bytes(), 0u);
  EXPECT_EQ(s.counters().bytes_delivered, 11u);
  EXPECT_EQ(st.bytes_delivered, 11u);
  EXPECT_EQ(st.ooo_segments, 0u);
  EXPECT_EQ(st.segments, 3u);
}

TEST(TcpStream, InOrderDeliveryWithoutHistoryTouchesNoHeap) {
  StreamConfig cfg;
  cfg.history = 0;
  TcpStream s(cfg);
  Collect out;
  out.keep = false;
  std::string payload(1460, 'p');
  g_counting = true;
  g_allocations = 0;
  s.add(TcpSeq(9), kSyn, {}, out);
  for (uint32_t i = 0; i < 100; ++i)
    s.add(TcpSeq(10 + 1460 * i), 0, text(payload), out);
  s.add(TcpSeq(10 + 1460 * 50), 0, text(payload), out);  // a retransmission too
  g_counting = false;
  EXPECT_EQ(g_allocations, 0u);
  EXPECT_EQ(s.counters().bytes_delivered, 146000u);
}

TEST(TcpStream, HistoryGrowsInTwoAllocationsNotOnePerSegment) {
  StreamStats st;
  StreamConfig cfg;  // default history: 4096 bytes
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  out.keep = false;
  std::string payload(1460, 'p');
  g_counting = true;
  g_allocations = 0;
  s.add(TcpSeq(9), kSyn, {}, out);
  for (uint32_t i = 0; i < 100; ++i)
    s.add(TcpSeq(10 + 1460 * i), 0, text(payload), out);
  s.add(TcpSeq(10 + 1460 * 99), 0, text(payload), out);  // compared in place, no copy
  g_counting = false;
  // 1460 bytes: a 2048-byte ring (256 doubled until they fit); 2920: 4096, the cap.
  EXPECT_EQ(g_allocations, 2u);
  EXPECT_EQ(s.history_bytes(), 4096u);
  EXPECT_EQ(st.rexmit_bytes, 1460u);
  EXPECT_EQ(s.counters().mismatches, 0u);
}

TEST(TcpStream, ShortFlowHoldsAQuarterKilobyteOfHistoryAndBudgetsIt) {
  StreamBudget budget(1 << 20);
  StreamConfig cfg;
  cfg.budget = &budget;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  EXPECT_EQ(s.history_bytes(), 0u);  // nothing delivered yet: no ring
  const std::string req(200, 'r');
  s.add(TcpSeq(1), 0, text(req), out);
  EXPECT_EQ(s.history_bytes(), 256u);
  EXPECT_EQ(budget.used(), 256u);
  s.release_buffers();
  EXPECT_EQ(s.history_bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);
  // Nothing kept to compare with any more: counted, not compared, even with other bytes.
  EXPECT_EQ(s.add(TcpSeq(1), 0, text("X"), out), DropReason::StreamRexmitUnverifiable);
  EXPECT_TRUE(out.mismatches.empty());
  s.add(TcpSeq(201), 0, text("more"), out);  // the stream goes on with a new ring
  EXPECT_EQ(budget.used(), 256u);
  EXPECT_EQ(out.data, req + "more");
}

TEST(TcpStream, GrowingHistoryKeepsEveryByteItHeldInPlace) {
  StreamConfig cfg;
  cfg.history = 1000;  // not a power of two: 256, 512, then 1000
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  std::string sent;
  for (int i = 0; i < 200; ++i) {  // 7-byte pieces cross every ring size at odd places
    const std::string piece = "p" + std::to_string(100000 + i).substr(0, 6);
    s.add(TcpSeq(1 + static_cast<uint32_t>(sent.size())), 0, text(piece), out);
    sent += piece;
    if (sent.size() == 259) {
      EXPECT_EQ(s.history_bytes(), 512u);  // 259 bytes outgrew the first 256
    }
  }
  EXPECT_EQ(s.history_bytes(), 1000u);
  // The newest 1000 bytes compare equal; one changed byte among them is reported with the
  // original taken from the ring.
  const uint32_t from = static_cast<uint32_t>(sent.size() - 1000);
  EXPECT_EQ(s.add(TcpSeq(1 + from), 0, text(std::string_view(sent).substr(from)), out),
            DropReason::None);
  std::string changed = sent.substr(from);
  changed[517] = '#';
  EXPECT_EQ(s.add(TcpSeq(1 + from), 0, text(changed), out), DropReason::StreamRexmitMismatch);
  ASSERT_EQ(out.mismatches.size(), 1u);
  EXPECT_EQ(out.mismatches[0].offset, from);
  EXPECT_EQ(out.mismatches[0].original, sent.substr(from));
  // One byte older than the window: unverifiable.
  EXPECT_EQ(s.add(TcpSeq(from), 0, text(std::string_view(sent).substr(from - 1, 1)), out),
            DropReason::StreamRexmitUnverifiable);
}

TEST(TcpStream, HistoryRefusedByTheBudgetMeansUnverifiableNotMismatch) {
  StreamBudget budget(100);  // less than the first ring
  StreamStats st;
  StreamConfig cfg;
  cfg.budget = &budget;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("abcd"), out);
  EXPECT_EQ(s.history_bytes(), 0u);
  EXPECT_EQ(s.add(TcpSeq(1), 0, text("XXXX"), out), DropReason::StreamRexmitUnverifiable);
  EXPECT_EQ(st.unverifiable_bytes, 4u);
  EXPECT_TRUE(out.mismatches.empty());
  EXPECT_EQ(budget.used(), 0u);
}

TEST(TcpStream, OutOfOrderStoreComesWithTheFirstHoleAndGoesWhenItCloses) {
  StreamBudget budget(1 << 20);
  StreamConfig cfg;
  cfg.history = 0;
  cfg.budget = &budget;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  g_counting = true;
  g_allocations = 0;
  s.add(TcpSeq(5), 0, text("ef"), out);  // the store and one chunk
  const uint64_t with_store = g_allocations;
  s.add(TcpSeq(8), 0, text("h"), out);  // one more chunk only
  g_counting = false;
  EXPECT_EQ(g_allocations, with_store + 2);  // the chunk: a map node and its bytes
  EXPECT_EQ(s.buffered_chunks(), 2u);
  EXPECT_EQ(budget.used(), 3u);
  s.add(TcpSeq(1), 0, text("abcd"), out);
  s.add(TcpSeq(7), 0, text("g"), out);
  EXPECT_EQ(out.data, "abcdefgh");
  EXPECT_EQ(s.buffered_chunks(), 0u);
  EXPECT_EQ(budget.used(), 0u);
  // Emptied, the store was freed: the next hole allocates it again, as the first one did.
  g_counting = true;
  g_allocations = 0;
  s.add(TcpSeq(20), 0, text("zz"), out);
  g_counting = false;
  EXPECT_EQ(g_allocations, with_store);
  s.release_buffers();  // dropped, not delivered
  EXPECT_EQ(s.buffered_bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(out.data, "abcdefgh");
}

// Table: segments in some order -> the delivered string, under each policy.
struct Case {
  const char* name;
  OverlapPolicy policy;
  std::vector<Seg> segs;
  std::string want;
  uint64_t mismatches;  // one per held chunk whose bytes differ
};

TEST(TcpStream, SegmentTablesReassembleAsEachPolicySays) {
  const std::vector<Case> cases = {
      {"reverse order",
       OverlapPolicy::First,
       {{7, 0, "ghi"}, {4, 0, "def"}, {1, 0, "abc"}},
       "abcdefghi",
       0},
      {"hole filled later",
       OverlapPolicy::First,
       {{1, 0, "ab"}, {5, 0, "ef"}, {3, 0, "cd"}},
       "abcdef",
       0},
      {"first: buffered bytes win over an overlap",
       OverlapPolicy::First,
       {{1, 0, "a"}, {3, 0, "GOOD"}, {3, 0, "EVIL"}, {2, 0, "b"}},
       "abGOOD",
       1},
      {"last: new bytes replace buffered ones",
       OverlapPolicy::Last,
       {{1, 0, "a"}, {3, 0, "GOOD"}, {3, 0, "EVIL"}, {2, 0, "b"}},
       "abEVIL",
       1},
      {"first: partial overlap keeps both ends",
       OverlapPolicy::First,
       {{1, 0, "a"}, {3, 0, "cd"}, {6, 0, "fg"}, {2, 0, "bXXXXXh"}},
       "abcdXfgh",
       2},
      {"last: partial overlap cuts held chunks",
       OverlapPolicy::Last,
       {{1, 0, "a"}, {3, 0, "cd"}, {6, 0, "fg"}, {4, 0, "XYZ"}, {2, 0, "b"}},
       "abcXYZg",
       2},
      {"last: new segment inside a held one splits it",
       OverlapPolicy::Last,
       {{1, 0, "a"}, {3, 0, "cdefg"}, {4, 0, "XY"}, {2, 0, "b"}},
       "abcXYfg",
       1},
      {"in-order segment over a held chunk: first keeps the chunk",
       OverlapPolicy::First,
       {{1, 0, "a"}, {4, 0, "DE"}, {2, 0, "bcxyz"}},
       "abcDEz",
       1},
      {"identical overlap is no mismatch",
       OverlapPolicy::First,
       {{1, 0, "a"}, {3, 0, "cde"}, {4, 0, "de"}, {2, 0, "b"}},
       "abcde",
       0},
      {"zero-length segments change nothing",
       OverlapPolicy::First,
       {{1, 0, ""}, {1, 0, "ab"}, {9, 0, ""}, {3, 0, "c"}},
       "abc",
       0},
      {"fin takes one sequence number after the data",
       OverlapPolicy::First,
       {{1, kFin, "ab"}},
       "ab",
       0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const StreamConfig cfg = cfg_with(c.policy);
    TcpStream s(cfg);
    Collect out;
    s.init(TcpSeq(0));
    for (const auto& g : c.segs)
      s.add(TcpSeq(g.seq), g.flags, text(g.payload), out);
    EXPECT_EQ(out.data, c.want);
    EXPECT_EQ(out.mismatches.size(), c.mismatches);
    EXPECT_EQ(s.buffered_bytes(), 0u);
  }
}

TEST(TcpStream, RandomPermutationsOfSegmentsEqualTheOriginal) {
  std::mt19937 rng(4242);
  std::string original(20000, '\0');
  for (auto& ch : original)
    ch = static_cast<char>('a' + rng() % 26);
  for (int round = 0; round < 50; ++round) {
    // Cut into random sizes, add some duplicates and overlapping resends of the same bytes.
    std::vector<std::pair<uint32_t, uint32_t>> segs;  // offset, length
    for (uint32_t off = 0; off < original.size();) {
      uint32_t len = std::min<uint32_t>(1 + rng() % 1500, original.size() - off);
      segs.push_back({off, len});
      off += len;
    }
    for (int i = 0; i < 20; ++i) {
      uint32_t off = rng() % original.size();
      segs.push_back({off, std::min<uint32_t>(1 + rng() % 3000, original.size() - off)});
    }
    std::shuffle(segs.begin(), segs.end(), rng);
    const TcpSeq isn(0xfffff000u + rng() % 0x2000);  // sometimes across the wrap
    StreamConfig cfg = cfg_with(round % 2 ? OverlapPolicy::Last : OverlapPolicy::First);
    cfg.history = 1u << 16;
    TcpStream s(cfg);
    Collect out;
    s.add(isn, kSyn, {}, out);
    for (auto [off, len] : segs)
      s.add(isn + 1 + off, 0, text(std::string_view(original).substr(off, len)), out);
    ASSERT_EQ(out.data.size(), original.size()) << round;
    EXPECT_TRUE(out.data == original) << round;
    EXPECT_TRUE(out.mismatches.empty()) << round;
    EXPECT_EQ(s.buffered_bytes(), 0u);
  }
}

// Reference models: under First every offset shows the first copy that arrived; under Last
// the last copy that arrived before the offset was delivered (delivered = every byte below it
// had arrived).
TEST(TcpStream, RandomOverlapsWithDifferentBytesFollowTheReferenceModelOfEachPolicy) {
  std::mt19937 rng(777);
  for (int round = 0; round < 200; ++round) {
    const auto policy = round % 2 ? OverlapPolicy::Last : OverlapPolicy::First;
    const uint32_t size = 1 + rng() % 3000;
    std::vector<std::pair<uint32_t, std::string>> segs;
    for (uint32_t off = 0; off < size;) {  // cover everything once ...
      uint32_t len = std::min<uint32_t>(1 + rng() % 200, size - off);
      segs.push_back({off, std::string(len, '\0')});
      off += len;
    }
    for (int i = 0; i < 30; ++i) {  // ... then overlaps anywhere
      uint32_t off = rng() % size;
      segs.push_back({off, std::string(std::min<uint32_t>(1 + rng() % 300, size - off), '\0')});
    }
    std::shuffle(segs.begin(), segs.end(), rng);
    for (auto& [off, bytes] : segs)
      for (auto& ch : bytes)
        ch = static_cast<char>('A' + rng() % 26);

    std::string model(size, '\0');
    std::vector<bool> have(size);
    uint32_t frontier = 0;
    for (const auto& [off, bytes] : segs) {
      for (uint32_t i = 0; i < bytes.size(); ++i) {
        const uint32_t o = off + i;
        if (o < frontier) continue;  // delivered: a retransmission, never changes the stream
        if (!have[o] || policy == OverlapPolicy::Last) model[o] = bytes[i];
        have[o] = true;
      }
      while (frontier < size && have[frontier])
        ++frontier;
    }

    StreamConfig cfg = cfg_with(policy);
    cfg.history = 1u << 16;
    TcpStream s(cfg);
    Collect out;
    const TcpSeq isn(rng());
    s.init(isn);
    for (const auto& [off, bytes] : segs)
      s.add(isn + 1 + off, 0, text(bytes), out);
    ASSERT_EQ(out.data.size(), model.size()) << round;
    EXPECT_TRUE(out.data == model) << round;
    EXPECT_EQ(s.buffered_bytes(), 0u);
    EXPECT_GT(s.counters().mismatches, 0u);
  }
}

TEST(TcpStream, OneByteSegmentsWithHolesHitTheChunkCap) {
  StreamStats st;
  StreamConfig cfg;
  cfg.max_chunks = 8;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  for (uint32_t i = 0; i < 20; ++i)
    s.add(TcpSeq(10 + 2 * i), 0, text("x"), out);
  EXPECT_EQ(s.buffered_chunks(), 8u);
  EXPECT_EQ(st.refused_segments, 12u);
}

TEST(TcpStream, RetransmissionWithDifferentPayloadReportsBothVersionsAndOffsets) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(100));
  s.add(TcpSeq(101), 0, text("GET /index"), out);
  EXPECT_EQ(s.add(TcpSeq(105), 0, text("/EVIL"), out), DropReason::StreamRexmitMismatch);
  ASSERT_EQ(out.mismatches.size(), 1u);
  EXPECT_EQ(out.mismatches[0].offset, 4u);
  EXPECT_EQ(out.mismatches[0].length, 5u);
  EXPECT_EQ(out.mismatches[0].original, "/inde");
  EXPECT_EQ(out.mismatches[0].replacement, "/EVIL");
  EXPECT_EQ(st.rexmit_bytes, 5u);
  EXPECT_EQ(s.counters().mismatches, 1u);
  EXPECT_EQ(out.data, "GET /index");  // what was delivered stays delivered
}

TEST(TcpStream, RetransmissionPartlyNewDeliversOnlyTheNewBytes) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("abcd"), out);
  EXPECT_EQ(s.add(TcpSeq(3), 0, text("cdef"), out), DropReason::None);
  EXPECT_EQ(out.data, "abcdef");
  EXPECT_EQ(st.rexmit_bytes, 2u);  // counted once, not delivered twice
  EXPECT_EQ(s.counters().bytes_delivered, 6u);
}

TEST(TcpStream, RetransmissionOlderThanHistoryIsCountedUnverifiable) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  cfg.history = 4;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("abcdefgh"), out);
  // "abcd" left the 4-byte window: counted, not compared; "efgh" is still there.
  EXPECT_EQ(s.add(TcpSeq(1), 0, text("XXXXXXgh"), out), DropReason::StreamRexmitMismatch);
  EXPECT_EQ(st.unverifiable_bytes, 4u);
  ASSERT_EQ(out.mismatches.size(), 1u);
  EXPECT_EQ(out.mismatches[0].offset, 4u);
  EXPECT_EQ(out.mismatches[0].original, "efgh");
  EXPECT_EQ(out.mismatches[0].replacement, "XXgh");
  EXPECT_EQ(s.add(TcpSeq(1), 0, text("abc"), out), DropReason::StreamRexmitUnverifiable);
  EXPECT_EQ(st.unverifiable_bytes, 7u);
}

// Segments in borrowed packets (a mapped capture): the history holds them instead of copying.
DropReason add_held(TcpStream& s, uint32_t seq, std::string_view payload, StreamSink& out) {
  const Packet p = Packet::borrow(text(payload), nullptr);
  return s.add(TcpSeq(seq), 0, p.data(), out, &p);
}

TEST(TcpStream, HeldHistoryReportsAMismatchAcrossTwoSegmentsWithBothVersions) {
  StreamBudget budget(1 << 20);
  StreamConfig cfg;
  cfg.budget = &budget;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(100));
  // The strings live as long as the test: the packets borrow them.
  add_held(s, 101, "GET /ind", out);
  add_held(s, 109, "ex.html", out);
  EXPECT_GT(s.history_bytes(), 0u);
  EXPECT_EQ(budget.used(), s.history_bytes());
  EXPECT_LT(s.history_bytes(), 400u);  // records of two segments, no ring, no copies
  EXPECT_EQ(add_held(s, 105, "/inDEx.h", out), DropReason::StreamRexmitMismatch);
  ASSERT_EQ(out.mismatches.size(), 1u);
  EXPECT_EQ(out.mismatches[0].offset, 4u);
  EXPECT_EQ(out.mismatches[0].original, "/index.h");
  EXPECT_EQ(out.mismatches[0].replacement, "/inDEx.h");
  EXPECT_EQ(add_held(s, 101, "GET /index.html", out), DropReason::None);  // same bytes
  EXPECT_EQ(out.data, "GET /index.html");
  s.release_buffers();
  EXPECT_EQ(budget.used(), 0u);
}

TEST(TcpStream, HeldHistoryKeepsAtLeastTheConfiguredBytesThenForgetsOlderSegments) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  cfg.history = 8;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  const std::string a = "aaaaa", b = "bbbbb", c = "ccccc";
  add_held(s, 1, a, out);
  add_held(s, 6, b, out);
  add_held(s, 11, c, out);
  // "bbbbbccccc" covers the 8 bytes asked for: "aaaaa" was let go.
  EXPECT_EQ(add_held(s, 1, "aaaaa", out), DropReason::StreamRexmitUnverifiable);
  EXPECT_EQ(st.unverifiable_bytes, 5u);
  EXPECT_EQ(add_held(s, 6, "bbbbbcXccc", out), DropReason::StreamRexmitMismatch);
  ASSERT_EQ(out.mismatches.size(), 1u);
  EXPECT_EQ(out.mismatches[0].original, "bbbbbccccc");
}

TEST(TcpStream, HeldHistoryCopiesBytesThatCameFromTheOutOfOrderStore) {
  StreamBudget budget(1 << 20);
  StreamConfig cfg;
  cfg.budget = &budget;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  add_held(s, 1, "abc", out);
  add_held(s, 7, "ghi", out);  // ahead: buffered (a copy)
  add_held(s, 4, "def", out);  // fills the hole; "ghi" drains from the store
  EXPECT_EQ(out.data, "abcdefghi");
  EXPECT_EQ(s.buffered_bytes(), 0u);
  EXPECT_EQ(budget.used(), s.history_bytes());
  EXPECT_EQ(add_held(s, 5, "efgXi", out), DropReason::StreamRexmitMismatch);
  ASSERT_EQ(out.mismatches.size(), 1u);
  EXPECT_EQ(out.mismatches[0].original, "efghi");
  s.release_buffers();
  EXPECT_EQ(budget.used(), 0u);
}

// Every segment of a mapped capture lies in one buffer, so the history takes a let-go segment's
// hold for the new one (a shortcut in hold()). The same segments in buffers of their own go the
// general way: deliveries, mismatches, counts, reasons and history must come out the same.
TEST(TcpStream, HeldHistoryInOneMappedBufferMatchesSegmentsInBuffersOfTheirOwn) {
  std::mt19937 rng(45);
  auto below = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  for (int round = 0; round < 300; ++round) {
    const uint32_t histories[] = {1, 4, 16, 100, 1000, 4096};
    const uint32_t history = histories[below(6)];
    std::string content;
    for (int i = 0; i < 4000; ++i)
      content += static_cast<char>('a' + below(26));
    // The segments in capture order: (offset, payload).
    std::vector<std::pair<uint32_t, std::string>> segs;
    for (uint32_t pos = 0; pos < content.size();) {
      const uint32_t len = std::min<uint32_t>(1 + below(round % 2 ? 40 : 300),
                                              static_cast<uint32_t>(content.size()) - pos);
      const uint32_t r = below(20);
      if (r < 3 && pos > 0) {  // a retransmission of earlier bytes, sometimes altered
        const uint32_t at = below(pos), n = 1 + below(std::min<uint32_t>(200, pos - at));
        std::string again = content.substr(at, n);
        if (below(2)) again[below(n)] = '!';
        segs.emplace_back(at, again);
      } else if (r < 5 && pos + len < content.size()) {  // the next two segments swapped
        const uint32_t len2 =
            std::min<uint32_t>(1 + below(100), static_cast<uint32_t>(content.size()) - pos - len);
        segs.emplace_back(pos + len, content.substr(pos + len, len2));
        segs.emplace_back(pos, content.substr(pos, len));
        pos += len + len2;
        continue;
      }
      segs.emplace_back(pos, content.substr(pos, len));
      pos += len;
    }
    std::string capture;
    for (const auto& [off, payload] : segs)
      capture += payload;
    const Packet whole = Packet::borrow(text(capture), nullptr);

    struct Run {
      Collect out;
      StreamStats st;
      std::vector<DropReason> why;
      uint64_t history_bytes = 0, used = 0;
    };
    auto run = [&](bool one_buffer, Run& r) {
      StreamBudget budget(1 << 20);
      StreamConfig cfg;
      cfg.history = history;
      cfg.budget = &budget;
      cfg.totals = &r.st;
      TcpStream s(cfg);
      s.init(TcpSeq(1000));
      size_t at = 0;
      for (const auto& [off, payload] : segs) {
        const Packet p = one_buffer
                             ? Packet::slice(whole, at, payload.size())
                             : Packet::borrow(text(capture).subspan(at, payload.size()), nullptr);
        at += payload.size();
        r.why.push_back(s.add(TcpSeq(1001 + off), 0, p.data(), r.out, &p));
      }
      r.history_bytes = s.history_bytes();
      r.used = budget.used();
    };
    Run a, b;
    run(true, a);
    run(false, b);
    SCOPED_TRACE(::testing::Message() << "round " << round << " history " << history);
    EXPECT_EQ(a.out.data, content);
    EXPECT_EQ(a.out.data, b.out.data);
    EXPECT_EQ(a.why, b.why);
    ASSERT_EQ(a.out.mismatches.size(), b.out.mismatches.size());
    for (size_t i = 0; i < a.out.mismatches.size(); ++i) {
      EXPECT_EQ(a.out.mismatches[i].offset, b.out.mismatches[i].offset);
      EXPECT_EQ(a.out.mismatches[i].original, b.out.mismatches[i].original);
      EXPECT_EQ(a.out.mismatches[i].replacement, b.out.mismatches[i].replacement);
    }
    EXPECT_EQ(a.st.mismatches, b.st.mismatches);
    EXPECT_EQ(a.st.unverifiable_bytes, b.st.unverifiable_bytes);
    EXPECT_EQ(a.st.rexmit_bytes, b.st.rexmit_bytes);
    EXPECT_EQ(a.history_bytes, b.history_bytes);
    EXPECT_EQ(a.used, b.used);
  }
}

// A history block goes back to StreamConfig::blocks when its stream lets it go and the next
// stream takes it as it is, without making its slots again. So the slots the last stream still
// used must be emptied on the way back: a hold left in one keeps that stream's packet (and its
// bytes) alive, and a slot's count of a copy would be given back to the budget a second time
// when the next stream lets that slot go.
TEST(TcpStream, SpareHistoryBlockComesBackWithoutTheCopiesOfItsLastStream) {
  StreamBudget budget(1 << 20);
  StreamBlocks blocks;
  StreamConfig cfg;
  cfg.budget = &budget;
  cfg.blocks = &blocks;
  cfg.history = 8;
  // Five-byte segments, each in a buffer of its own, through both slots of a first block and
  // round again: the history lets go of every slot once.
  auto feed = [](TcpStream& c, Collect& out) {
    add_held(c, 6, "67890", out);
    add_held(c, 11, "ABCDE", out);
    add_held(c, 16, "FGHIJ", out);
    add_held(c, 21, "KLMNO", out);
  };
  // What the history holds after them in a block of its own: its records, no copies.
  uint64_t own_block = 0;
  {
    StreamConfig own = cfg;
    own.budget = nullptr;
    own.blocks = nullptr;
    TcpStream c(own);
    Collect out;
    c.init(TcpSeq(0));
    add_held(c, 1, "12345", out);
    feed(c, out);
    own_block = c.history_bytes();
  }
  auto check_next_stream = [&](const char* what) {
    SCOPED_TRACE(what);
    TcpStream c(cfg);
    Collect out;
    c.init(TcpSeq(0));
    g_allocations = 0;
    g_counting = true;
    add_held(c, 1, "12345", out);
    g_counting = false;
    EXPECT_EQ(g_allocations, 0u) << "the block must come from the spare list";
    feed(c, out);
    EXPECT_EQ(out.data, "1234567890ABCDEFGHIJKLMNO");
    EXPECT_EQ(c.history_bytes(), own_block);
    EXPECT_EQ(budget.used(), own_block) << "a copy's count came back with the block";
    EXPECT_EQ(add_held(c, 16, "FGHIJKLxNO", out), DropReason::StreamRexmitMismatch);
    ASSERT_EQ(out.mismatches.size(), 1u);
    EXPECT_EQ(out.mismatches[0].original, "FGHIJKLMNO");
    c.release_buffers();
    EXPECT_EQ(budget.used(), 0u);
  };

  {
    // The block grows while it holds a copy (bytes that came from the out-of-order store): the
    // small block goes back with the slot its copy was moved out of.
    TcpStream a(cfg);
    Collect out;
    a.init(TcpSeq(0));
    add_held(a, 4, "def", out);  // ahead: buffered
    add_held(a, 1, "abc", out);  // held; "def" drains as a copy into the second slot
    add_held(a, 7, "ghi", out);  // a third segment: a bigger block
    EXPECT_EQ(out.data, "abcdefghi");
    a.release_buffers();
    EXPECT_EQ(budget.used(), 0u);
  }
  check_next_stream("after a block that grew");

  {
    // The block goes back while its slots hold a packet and a copy.
    auto alive = std::make_shared<int>(0);
    const std::string held = "xyz12";
    TcpStream b(cfg);
    Collect out;
    b.init(TcpSeq(0));
    add_held(b, 6, "67", out);  // ahead: buffered
    {
      const Packet p = Packet::borrow(text(held), alive);
      b.add(TcpSeq(1), 0, p.data(), out, &p);  // held; "67" drains as a copy
    }
    EXPECT_EQ(out.data, "xyz1267");
    EXPECT_EQ(alive.use_count(), 2) << "the history holds the packet";
    b.release_buffers();
    EXPECT_EQ(budget.used(), 0u);
    EXPECT_EQ(alive.use_count(), 1) << "the spare block still holds the packet";
    check_next_stream("after a block that held a packet and a copy");
    EXPECT_EQ(alive.use_count(), 1);
  }
}

TEST(TcpStream, WraparoundAcrossTwoToTheThirtyTwoIsInvisible) {
  TcpStream s;
  Collect out;
  s.add(TcpSeq(0xfffffffau), kSyn, {}, out);           // offset 0 = 0xfffffffb
  s.add(TcpSeq(0x00000003u), 0, text("6789"), out);    // offset 8, ahead
  s.add(TcpSeq(0xfffffffbu), 0, text("012345"), out);  // offsets 0..5, crosses 2^32
  s.add(TcpSeq(0x00000001u), 0, text("XY"), out);      // offsets 6..7
  EXPECT_EQ(out.data, "012345XY6789");
  EXPECT_EQ(s.next_seq(), TcpSeq(7));
}

// A sink that only checks the sizes: 5 GiB are never stored.
struct Count : StreamSink {
  uint64_t bytes = 0, last_off = 0;
  void on_data(uint64_t off, Bytes b) override {
    last_off = off;
    bytes += b.size();
  }
};

TEST(TcpStream, OffsetsPastFourGibKeepCountingAndStayInOrder) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  TcpStream s(cfg);
  Count out;
  std::vector<std::byte> big(64 * 1024, std::byte{'z'});
  const uint64_t total = 5ull << 30;
  TcpSeq seq(0x7fff0000u);
  s.add(seq, kSyn, {}, out);
  seq += 1;
  // One segment is held back and sent after its successor, past the 4 GiB mark.
  const uint64_t swap_at = (4ull << 30) + big.size() * 3;
  for (uint64_t off = 0; off < total; off += big.size()) {
    if (off == swap_at) continue;
    s.add(seq + static_cast<uint32_t>(off), 0, big, out);
    if (off == swap_at + big.size()) s.add(seq + static_cast<uint32_t>(swap_at), 0, big, out);
  }
  EXPECT_EQ(out.bytes, total);
  EXPECT_EQ(s.next_offset(), total);
  EXPECT_EQ(st.ooo_segments, 1u);
  EXPECT_EQ(out.last_off, total - big.size());
}

TEST(TcpStream, SkipToDeliversAnExplicitGapThenContinues) {
  TcpStream s;
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("ab"), out);
  s.add(TcpSeq(6), 0, text("fg"), out);   // 3 missing bytes at offsets 2..4
  s.add(TcpSeq(12), 0, text("lm"), out);  // and 3 more at 7..10
  EXPECT_EQ(out.data, "ab");
  s.skip_to(TcpSeq(9), out);  // the peer acked up to offset 8: the first hole is gone
  EXPECT_EQ(out.data, "ab###fg#");
  EXPECT_EQ(out.gaps, (std::vector<Gap>{{2, 3}, {7, 1}}));
  s.add(TcpSeq(9), 0, text("ijk"), out);
  EXPECT_EQ(out.data, "ab###fg#ijklm");
  EXPECT_EQ(s.counters().gaps, 2u);
  EXPECT_EQ(s.counters().gap_bytes, 4u);
}

TEST(TcpStream, FlushAtConnectionEndDeliversHeldDataAndTheHoleBeforeTheFin) {
  TcpStream s;
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("ab"), out);
  s.add(TcpSeq(5), 0, text("ef"), out);
  s.add(TcpSeq(9), kFin, {}, out);  // FIN at offset 8: bytes 6..7 never came either
  EXPECT_TRUE(s.fin_seen());
  EXPECT_FALSE(s.finished());
  s.flush(out);
  EXPECT_EQ(out.data, "ab##ef##");
  EXPECT_TRUE(s.finished());
}

TEST(TcpStream, DepthLimitStopsDeliveryAndCountsTheRest) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  cfg.depth = 5;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  EXPECT_EQ(s.add(TcpSeq(1), 0, text("abc"), out), DropReason::None);
  EXPECT_EQ(s.add(TcpSeq(4), 0, text("defg"), out), DropReason::StreamDepth);
  EXPECT_EQ(s.add(TcpSeq(8), 0, text("hij"), out), DropReason::StreamDepth);
  EXPECT_EQ(out.data, "abcde");
  EXPECT_EQ(st.depth_bytes, 5u);
}

TEST(TcpStream, PerStreamCapAndSharedBudgetRefuseAndCount) {
  StreamBudget budget(6);
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  cfg.max_buffered = 4;
  cfg.budget = &budget;
  TcpStream a(cfg), b(cfg);
  Collect oa, ob;
  a.init(TcpSeq(0));
  b.init(TcpSeq(0));
  EXPECT_EQ(a.add(TcpSeq(10), 0, text("xxxx"), oa), DropReason::None);
  EXPECT_EQ(a.add(TcpSeq(20), 0, text("y"), oa), DropReason::StreamOooLimit);
  EXPECT_EQ(b.add(TcpSeq(10), 0, text("zzz"), ob), DropReason::StreamBudget);  // 4 + 3 > 6
  EXPECT_EQ(b.add(TcpSeq(10), 0, text("zz"), ob), DropReason::None);
  EXPECT_EQ(budget.used(), 6u);
  EXPECT_EQ(st.refused_segments, 2u);  // the totals count both streams
  EXPECT_EQ(st.refused_bytes, 1u + 3u);
  a.flush(oa);  // delivered data gives its budget back
  EXPECT_EQ(budget.used(), 2u);
  b.disable();
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(b.add(TcpSeq(1), 0, text("q"), ob), DropReason::None);
  EXPECT_EQ(ob.data, "");
}

TEST(TcpStream, SegmentFarBeyondAnyWindowIsRefused) {
  TcpStream s;
  Collect out;
  s.init(TcpSeq(0));
  EXPECT_EQ(s.add(TcpSeq(0x60000000u), 0, text("x"), out), DropReason::StreamOutOfWindow);
  EXPECT_EQ(s.buffered_bytes(), 0u);
}

TEST(TcpStream, KeepAliveProbeOneBelowNextIsNotAMismatch) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("abc"), out);
  EXPECT_EQ(s.add(TcpSeq(3), 0, text("\0"), out), DropReason::None);  // garbage byte
  EXPECT_EQ(s.add(TcpSeq(3), 0, {}, out), DropReason::None);
  EXPECT_EQ(st.keepalives, 2u);
  EXPECT_TRUE(out.mismatches.empty());
  EXPECT_EQ(out.data, "abc");
}

TEST(TcpStream, ZeroWindowProbeByteIsDeliveredOnceAndItsResendMatches) {
  StreamStats st;
  StreamConfig cfg;
  cfg.totals = &st;
  TcpStream s(cfg);
  Collect out;
  s.init(TcpSeq(0));
  s.add(TcpSeq(1), 0, text("abc"), out);
  s.add(TcpSeq(4), 0, text("d"), out);  // RFC 9293 3.8.6.1 probe: the next byte, alone
  s.add(TcpSeq(4), 0, text("defg"), out);
  EXPECT_EQ(out.data, "abcdefg");
  EXPECT_EQ(st.rexmit_bytes, 1u);
  EXPECT_TRUE(out.mismatches.empty());
}

TEST(TcpStream, SynDataStartsAtIsnPlusOneAndRetransmittedSynIsHarmless) {
  TcpStream s;
  Collect out;
  s.add(TcpSeq(500), kSyn, text("tfo"), out);  // RFC 7413 data on the SYN
  s.add(TcpSeq(500), kSyn, text("tfo"), out);
  s.add(TcpSeq(504), 0, text("!"), out);
  EXPECT_EQ(out.data, "tfo!");
  EXPECT_TRUE(out.mismatches.empty());
}

TEST(TcpStream, MidstreamPickupStartsAtTheFirstSegmentSeen) {
  TcpStream s;
  Collect out;
  s.add(TcpSeq(7000), 0, text("later"), out);
  EXPECT_EQ(s.add(TcpSeq(6990), 0, text("0123456789"), out),
            DropReason::StreamRexmitUnverifiable);  // before the pickup point
  EXPECT_EQ(out.data, "later");
}

TEST(TcpStream, MovedStreamKeepsItsBufferAndBudget) {
  StreamBudget budget(100);
  StreamConfig cfg;
  cfg.budget = &budget;
  TcpStream a(cfg);
  Collect out;
  a.init(TcpSeq(0));
  a.add(TcpSeq(3), 0, text("cd"), out);
  TcpStream b(std::move(a));
  EXPECT_EQ(budget.used(), 2u);
  b.add(TcpSeq(1), 0, text("ab"), out);
  EXPECT_EQ(out.data, "abcd");
  EXPECT_EQ(budget.used(), 0u);
}

TEST(TcpStream, MoveAssignmentGivesBackWhatTheTargetHeldAndTakesTheRest) {
  StreamBudget budget(1 << 20);
  StreamConfig cfg;
  cfg.budget = &budget;
  TcpStream a(cfg), b(cfg);
  Collect oa, ob;
  a.init(TcpSeq(0));
  b.init(TcpSeq(0));
  a.add(TcpSeq(1), 0, text("abc"), oa);
  a.add(TcpSeq(9), 0, text("zz"), oa);
  b.add(TcpSeq(1), 0, text("b"), ob);
  b.add(TcpSeq(5), 0, text("yyy"), ob);
  EXPECT_EQ(budget.used(), 256u + 2u + 256u + 3u);
  b = std::move(a);
  EXPECT_EQ(budget.used(), 256u + 2u);
  EXPECT_EQ(a.history_bytes(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(b.add(TcpSeq(1), 0, text("abX"), oa), DropReason::StreamRexmitMismatch);
  b.release_buffers();
  EXPECT_EQ(budget.used(), 0u);
}

TEST(TcpStream, BuiltPacketsDecodeAndReassemble) {
  PacketBuilder pb;
  const auto c = *IpAddr::parse("192.0.2.1");
  const auto sv = *IpAddr::parse("192.0.2.2");
  std::vector<Packet> pkts;
  pkts.push_back(pb.ipv4(c, sv).tcp(1234, 80).seq(TcpSeq(41)).flags(kSyn).build());
  pkts.push_back(pb.ipv4(c, sv).tcp(1234, 80).seq(TcpSeq(46)).payload("world").build());
  pkts.push_back(pb.ipv4(c, sv).tcp(1234, 80).seq(TcpSeq(42)).payload("hell").build());
  TcpStream s;
  Collect out;
  for (const auto& p : pkts) {
    auto v = PacketView::decode(p);
    auto t = v.tcp();
    ASSERT_TRUE(t);
    s.add(t->seq(), t->flags(), v.payload(), out);
  }
  EXPECT_EQ(out.data, "hellworld");
}

// ---- Oracles from ../shared/pcaps ----------------------------------------------------------

struct Side {
  uint16_t src_port, dst_port;
};

// A test-only demultiplexer: one direction of one connection, chosen by ports.
struct Replay {
  StreamConfig cfg;  // the stream keeps a pointer to it
  Collect out;
  TcpStream stream;
  explicit Replay(const StreamConfig& c = {}) : cfg(c), stream(cfg) {}
};

bool replay(const fs::path& pcap, Side side, Replay& r) {
  auto pkts = read_capture(pcap.string());
  if (!pkts.ok()) {
    ADD_FAILURE() << pkts.error().message();
    return false;
  }
  for (const auto& p : *pkts) {
    auto v = PacketView::decode(p);
    auto t = v.tcp();
    if (!t || t->src_port() != side.src_port || t->dst_port() != side.dst_port) continue;
    if (t->rst()) continue;  // RFC 9293 3.5.3: data on a RST is diagnostic, not stream data
    r.stream.add(t->seq(), t->flags(), v.payload(), r.out);
  }
  r.stream.flush(r.out);
  return true;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

#define L45_NEED_PCAPS(dir, sub)                                                       \
  auto dir##_root = testing::shared_pcaps_dir();                                       \
  if (!dir##_root || !fs::exists(*dir##_root / sub))                                   \
    GTEST_SKIP() << "no ../shared/pcaps/" << sub << " (set L45_PCAPS to point at it)"; \
  const fs::path dir = *dir##_root / sub

TEST(TcpStreamOracle, PcapPlusPlusPerSideFilesMatchBothDirections) {
  L45_NEED_PCAPS(d, "ppp-tcpreassembly-example");
  Replay c2s, s2c;
  ASSERT_TRUE(replay(d / "tcp-reassembly.pcap", {64370, 80}, c2s));
  ASSERT_TRUE(replay(d / "tcp-reassembly.pcap", {80, 64370}, s2c));
  const auto want_c = slurp(d / "expected/sides/172.16.133.54.64370-23.21.118.18.80.txt");
  const auto want_s = slurp(d / "expected/sides/23.21.118.18.80-172.16.133.54.64370.txt");
  EXPECT_EQ(want_c.size(), 9997u);
  EXPECT_EQ(want_s.size(), 29480u);
  EXPECT_EQ(c2s.out.data.size(), want_c.size());
  EXPECT_TRUE(c2s.out.data == want_c);
  EXPECT_EQ(s2c.out.data.size(), want_s.size());
  EXPECT_TRUE(s2c.out.data == want_s);
  EXPECT_EQ(c2s.stream.counters().gaps + s2c.stream.counters().gaps, 0u);
}

TEST(TcpStreamOracle, ZeekFtpIpv6ControlContentsMatch) {
  L45_NEED_PCAPS(d, "zeek-ftp-ipv6");
  Replay orig, resp;
  ASSERT_TRUE(replay(d / "ftp-ipv6.pcap", {49185, 21}, orig));
  ASSERT_TRUE(replay(d / "ftp-ipv6.pcap", {21, 49185}, resp));
  auto drop_header = [](std::string s) { return s.substr(s.find('\n') + 1); };
  const auto want_o = drop_header(slurp(d / "expected/contents_control_orig.dat"));
  const auto want_r = drop_header(slurp(d / "expected/contents_control_resp.dat"));
  EXPECT_EQ(want_o.size(), 310u);
  EXPECT_EQ(want_r.size(), 3448u);
  EXPECT_EQ(orig.out.data, want_o);
  EXPECT_EQ(resp.out.data, want_r);
}

// Suricata's tcp-data log: "<hdr>-ts:" / "-tc:" then hexdump lines, hex in columns 8..56.
std::pair<std::string, std::string> suricata_tcp_data(const std::string& log) {
  std::string ts, tc, *cur = nullptr;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.ends_with("-ts:")) {
      cur = &ts;
    } else if (line.ends_with("-tc:")) {
      cur = &tc;
    } else if (cur && line.size() > 8) {
      std::istringstream hex(line.substr(7, 49));
      for (std::string h; hex >> h;)
        *cur += static_cast<char>(std::stoi(h, nullptr, 16));
    }
  }
  return {ts, tc};
}

TEST(TcpStreamOracle, SuricataTcpDataLogMatchesPerDirection) {
  L45_NEED_PCAPS(d, "sv-output-tcp-data");
  Replay ts, tc;
  ASSERT_TRUE(replay(d / "input.pcap", {59733, 80}, ts));
  ASSERT_TRUE(replay(d / "input.pcap", {80, 59733}, tc));
  auto [want_ts, want_tc] = suricata_tcp_data(slurp(d / "expected/tcp-data.log"));
  EXPECT_EQ(want_ts.size(), 100u);
  EXPECT_EQ(want_tc.size(), 363u);
  EXPECT_EQ(ts.out.data, want_ts);
  EXPECT_EQ(tc.out.data, want_tc);
}

TEST(TcpStreamOracle, MaxSeqCaptureWrapsAndEqualsTheUnwrappedOne) {
  L45_NEED_PCAPS(d, "ppp-one-tcp-stream-max-seq");
  const fs::path plain = d.parent_path() / "ppp-one-tcp-stream/one_tcp_stream.pcap";
  if (!fs::exists(plain)) GTEST_SKIP() << "no ../shared/pcaps/ppp-one-tcp-stream";
  Replay wc, ws, pc, ps;
  ASSERT_TRUE(replay(d / "one_tcp_stream_max_seq.pcap", {61541, 80}, wc));
  ASSERT_TRUE(replay(d / "one_tcp_stream_max_seq.pcap", {80, 61541}, ws));
  ASSERT_TRUE(replay(plain, {61541, 80}, pc));
  ASSERT_TRUE(replay(plain, {80, 61541}, ps));
  // gen/*.streams.tsv (tshark follow): 9948 B client->server, 12444 B back; together the
  // 22392 B of PcapPlusPlus's expected output.
  EXPECT_EQ(wc.out.data.size(), 9948u);
  EXPECT_EQ(ws.out.data.size(), 12444u);
  EXPECT_EQ(wc.out.data.size() + ws.out.data.size(),
            fs::file_size(d / "expected/one_tcp_stream_output.txt"));
  EXPECT_TRUE(wc.out.data == pc.out.data);
  EXPECT_TRUE(ws.out.data == ps.out.data);
  EXPECT_EQ(wc.stream.counters().gaps + ws.stream.counters().gaps, 0u);
}

TEST(TcpStreamOracle, QuantumInsertRaisesMismatchWithInjectedAndRealPayload) {
  L45_NEED_PCAPS(d, "zeek-quantum-insert");
  Replay resp;
  ASSERT_TRUE(replay(d / "qi_internet_SYNACK_curl_jsonip.pcap", {80, 39976}, resp));
  ASSERT_GE(resp.out.mismatches.size(), 1u);
  const auto& m = resp.out.mismatches[0];
  EXPECT_EQ(m.offset, 0u);
  // Zeek's t1 (first seen, injected) and t2 (the real server's answer), as in stdout.txt.
  EXPECT_TRUE(m.original.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nBANG!"))
      << m.original;
  EXPECT_TRUE(m.replacement.starts_with("HTTP/1.1 200 OK\r\nServer: nginx/1.4.4\r\nDate:"))
      << m.replacement;
  EXPECT_EQ(m.original.size(), m.replacement.size());
}

TEST(TcpStreamOracle, SuricataExactOverlapKeepsGoodAndReportsEvil) {
  L45_NEED_PCAPS(d, "sv-exact-overlap");
  for (auto policy : {OverlapPolicy::First, OverlapPolicy::Last}) {
    Replay r(cfg_with(policy));
    ASSERT_TRUE(replay(d / "tcp-overlap.pcap", {12345, 8080}, r));
    // Suricata's default (bsd) policy reassembles "GOOD" (test.yaml). "GOOD" arrived in order,
    // so it is delivered at once and Last cannot replace it: Suricata's old-linux "EVIL" comes
    // from holding data until it is acked, which belongs to the engine above, not this buffer.
    EXPECT_EQ(r.out.data, "GOOD");
    ASSERT_EQ(r.out.mismatches.size(), 1u);
    EXPECT_EQ(r.out.mismatches[0].offset, 0u);
    EXPECT_EQ(r.out.mismatches[0].original, "GOOD");
    EXPECT_EQ(r.out.mismatches[0].replacement, "EVIL");
  }
}

}  // namespace
}  // namespace l45
