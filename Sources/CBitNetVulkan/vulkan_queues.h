// The queue families the device listing reports and the runtime opens, chosen by one rule.
#ifndef BITNET_VULKAN_QUEUES_H
#define BITNET_VULKAN_QUEUES_H

#include <stdint.h>
#include <vulkan/vulkan.h>

/// The first of `count` families with compute (`*compute`), and the first with transfer but neither graphics nor
/// compute (`*transfer`, a copy engine that runs beside the compute queue); -1 where there is none.
static inline void bitnet_vk_queue_families(const VkQueueFamilyProperties *families, uint32_t count, int32_t *compute,
                                            int32_t *transfer) {
    *compute = *transfer = -1;
    for (uint32_t f = 0; f < count; f++) {
        VkQueueFlags flags = families[f].queueFlags;
        if ((flags & VK_QUEUE_COMPUTE_BIT) && *compute < 0) *compute = (int32_t)f;
        if ((flags & VK_QUEUE_TRANSFER_BIT) && !(flags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT)) && *transfer < 0)
            *transfer = (int32_t)f;
    }
}

#endif
