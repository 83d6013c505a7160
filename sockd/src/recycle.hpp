#pragma once
// Objects the session loops make and free at their session rate (the loop's
// session, the handshake's buffers, the session plan) take their memory
// from a free list of the thread that frees them, not from malloc. Each is
// above glibc's per-thread cache (over 1 KiB, or more of them alive at once
// than it keeps), where every malloc and free walks the shared bins.
//
//   struct Sess : Recycled<Sess> { ... };       new and delete recycle
//   RecycledPtr<SessionPlan> p = make_recycled<SessionPlan>(args...);
//
// Each thread keeps at most kRecycleKeep objects of a type (beyond that they
// are freed as usual) and frees the ones it kept when it exits. Under
// AddressSanitizer it keeps none, so that a use after free is still found.

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace diode::sockd {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr std::size_t kRecycleKeep = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr std::size_t kRecycleKeep = 0;
#else
inline constexpr std::size_t kRecycleKeep = 256;
#endif
#else
inline constexpr std::size_t kRecycleKeep = 256;
#endif

/// This thread's free blocks of sizeof(T) bytes.
template <typename T>
class FreeList {
 public:
  static void* take() {
    List& l = list();
    if (l.top == nullptr) return ::operator new(sizeof(T));
    Node* p = l.top;
    l.top = p->next;
    --l.count;
    return p;
  }
  static void give(void* p) noexcept {
    List& l = list();
    if (l.count >= kRecycleKeep) {
      ::operator delete(p);
      return;
    }
    l.top = ::new (p) Node{l.top};
    ++l.count;
  }

 private:
  struct Node {
    Node* next;
  };
  struct List {
    Node* top = nullptr;
    std::size_t count = 0;
    List() = default;
    List(const List&) = delete;
    List& operator=(const List&) = delete;
    ~List() {
      while (top != nullptr) {
        Node* p = top;
        top = p->next;
        ::operator delete(p);
      }
      count = kRecycleKeep;  // anything freed on this thread later goes to the heap
    }
  };
  static List& list() {
    thread_local List l;
    return l;
  }
};

/// A base whose new and delete recycle (for T itself, not a type derived from it).
template <typename T>
struct Recycled {
  static void* operator new(std::size_t n) {
    return n == sizeof(T) ? FreeList<T>::take() : ::operator new(n);
  }
  static void operator delete(void* p, std::size_t n) noexcept {
    if (n == sizeof(T)) FreeList<T>::give(p);
    else ::operator delete(p);
  }
};

template <typename T>
struct RecycledDelete {
  void operator()(T* p) const noexcept {
    p->~T();
    FreeList<T>::give(p);
  }
};

template <typename T>
using RecycledPtr = std::unique_ptr<T, RecycledDelete<T>>;

template <typename T, typename... Args>
RecycledPtr<T> make_recycled(Args&&... args) {
  void* mem = FreeList<T>::take();
  try {
    return RecycledPtr<T>(::new (mem) T(std::forward<Args>(args)...));
  } catch (...) {
    FreeList<T>::give(mem);
    throw;
  }
}

}  // namespace diode::sockd
