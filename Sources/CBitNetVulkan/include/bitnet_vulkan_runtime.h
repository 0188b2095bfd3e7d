// The Vulkan runtime the GPU backend records its forward passes with: a device and its queues, device memory
// sub-allocated from a few large blocks, uploads staged through a ring of host-visible buffers, compute
// pipelines sharing one descriptor layout, and streams (a command buffer, a fence and a descriptor pool each)
// that one forward pass at a time records into. Everything is reached through the loader opened at run time.
#ifndef BITNET_VULKAN_RUNTIME_H
#define BITNET_VULKAN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/// Outcomes, mirrored by the Swift `VulkanError.Code`.
typedef enum {
    BITNET_VK_OK = 0,
    /// No loader, no instance, no such device, or a device without what the backend needs.
    BITNET_VK_UNAVAILABLE = 1,
    /// Device or host memory ran out.
    BITNET_VK_OUT_OF_MEMORY = 2,
    /// The device was lost (driver reset, hang).
    BITNET_VK_DEVICE_LOST = 3,
    /// Any other failure of a Vulkan call.
    BITNET_VK_FAILED = 4,
} bitnet_vk_status;

/// The storage-buffer bindings every pipeline's one descriptor layout has, and its push-constant bytes.
#define BITNET_VK_BINDINGS 10
#define BITNET_VK_PUSH_BYTES 128

typedef struct bitnet_vk_context bitnet_vk_context;
typedef struct bitnet_vk_buffer bitnet_vk_buffer;
typedef struct bitnet_vk_pipeline bitnet_vk_pipeline;
typedef struct bitnet_vk_stream bitnet_vk_stream;
/// A descriptor set: up to BITNET_VK_BINDINGS buffers, allocated from a stream's pool.
typedef uint64_t bitnet_vk_binding;

/// Where a buffer's memory comes from.
typedef enum {
    /// Device-local, then host-visible device-local, then host memory (integrated GPUs, lavapipe).
    BITNET_VK_MEMORY_DEVICE = 0,
    /// Host-visible and coherent, cached where offered: per-pass inputs and read-back results.
    BITNET_VK_MEMORY_HOST = 1,
} bitnet_vk_memory;

typedef struct {
    /// The loader to open (NULL: "libvulkan.so.1").
    const char *library;
    /// The physical device's index in vkEnumeratePhysicalDevices order.
    int32_t device_index;
    /// Enable VK_LAYER_KHRONOS_validation and count its warnings and errors.
    int32_t validation;
    /// Enable shaderIntegerDotProduct (the device must support it).
    int32_t integer_dot_product;
} bitnet_vk_options;

/// Creates the instance, device and queues. On failure returns a status with a message in `error`.
bitnet_vk_status bitnet_vk_context_create(const bitnet_vk_options *options, bitnet_vk_context **context, char *error, int error_size);
void bitnet_vk_context_destroy(bitnet_vk_context *context);
/// Warnings and errors the validation layer reported so far; the last one's text in `message`.
int64_t bitnet_vk_validation_messages(bitnet_vk_context *context, char *message, int message_size);
/// Device-memory bytes held by live buffers.
uint64_t bitnet_vk_memory_in_use(bitnet_vk_context *context);
/// Whether uploads use a transfer-only queue.
int32_t bitnet_vk_has_transfer_queue(bitnet_vk_context *context);

/// A storage buffer of `size` bytes, placed in a shared block or, when large, its own allocation.
bitnet_vk_status bitnet_vk_buffer_create(bitnet_vk_context *context, uint64_t size, bitnet_vk_memory memory, bitnet_vk_buffer **buffer,
                                         char *error, int error_size);
void bitnet_vk_buffer_destroy(bitnet_vk_context *context, bitnet_vk_buffer *buffer);
/// The buffer's bytes when its memory is host-visible, else NULL.
void *bitnet_vk_buffer_mapped(bitnet_vk_buffer *buffer);

/// Copies `size` bytes to `buffer` at `offset`: directly when mapped, else through the staging ring (the copy
/// may still be running when this returns; the ring waits before reusing a staging buffer).
bitnet_vk_status bitnet_vk_upload(bitnet_vk_context *context, bitnet_vk_buffer *buffer, uint64_t offset, const void *data, uint64_t size,
                                  char *error, int error_size);
/// Waits for every staged upload.
bitnet_vk_status bitnet_vk_upload_finish(bitnet_vk_context *context, char *error, int error_size);

/// A compute pipeline from SPIR-V words; specialization constant 0 is the workgroup's x size.
bitnet_vk_status bitnet_vk_pipeline_create(bitnet_vk_context *context, const uint32_t *code, size_t bytes, uint32_t local_size_x,
                                           bitnet_vk_pipeline **pipeline, char *error, int error_size);
void bitnet_vk_pipeline_destroy(bitnet_vk_context *context, bitnet_vk_pipeline *pipeline);

/// A command buffer, a fence and a pool of `max_sets` descriptor sets.
bitnet_vk_status bitnet_vk_stream_create(bitnet_vk_context *context, uint32_t max_sets, bitnet_vk_stream **stream, char *error, int error_size);
void bitnet_vk_stream_destroy(bitnet_vk_context *context, bitnet_vk_stream *stream);
/// A descriptor set binding `buffers` (NULL entries get a small placeholder buffer) at 0…count-1.
bitnet_vk_status bitnet_vk_stream_binding(bitnet_vk_context *context, bitnet_vk_stream *stream, bitnet_vk_buffer *const *buffers, int count,
                                          bitnet_vk_binding *binding, char *error, int error_size);
/// Starts recording a pass.
bitnet_vk_status bitnet_vk_stream_begin(bitnet_vk_context *context, bitnet_vk_stream *stream, char *error, int error_size);
void bitnet_vk_stream_dispatch(bitnet_vk_context *context, bitnet_vk_stream *stream, bitnet_vk_pipeline *pipeline, bitnet_vk_binding binding,
                               const void *push, uint32_t push_size, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z);
/// Makes the writes of earlier dispatches visible to later ones.
void bitnet_vk_stream_barrier(bitnet_vk_context *context, bitnet_vk_stream *stream);
/// Copies the first `size` bytes of `source` to `destination` once earlier dispatches have written them.
void bitnet_vk_stream_copy(bitnet_vk_context *context, bitnet_vk_stream *stream, bitnet_vk_buffer *source, bitnet_vk_buffer *destination,
                           uint64_t size);
/// A pool of `capacity` timestamps for the stream's passes (the device's compute queue must write them).
bitnet_vk_status bitnet_vk_stream_enable_timestamps(bitnet_vk_context *context, bitnet_vk_stream *stream, uint32_t capacity,
                                                    char *error, int error_size);
/// Records a timestamp taken when everything recorded before it has finished (none past the capacity, or unless enabled).
void bitnet_vk_stream_timestamp(bitnet_vk_context *context, bitnet_vk_stream *stream);
/// After a submission: the pass's timestamps in nanoseconds from its first; how many (at most `capacity`), or -1.
int bitnet_vk_stream_timestamps(bitnet_vk_context *context, bitnet_vk_stream *stream, double *nanoseconds, int capacity);
/// Ends the recording (writes made visible to the host), submits it and waits on its fence.
bitnet_vk_status bitnet_vk_stream_submit(bitnet_vk_context *context, bitnet_vk_stream *stream, char *error, int error_size);
/// Submits the last recording again, unchanged, and waits on its fence (what it reads may have changed: the per-pass
/// inputs in host-visible memory).
bitnet_vk_status bitnet_vk_stream_resubmit(bitnet_vk_context *context, bitnet_vk_stream *stream, char *error, int error_size);

#endif
