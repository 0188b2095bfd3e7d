// What a model is (configuration, architectures, tokenizers) and the seam types (batches, caches,
// errors) are part of this module's API: an app imports BitNetInference alone.
@_exported import BitNetEngine
@_exported import BitNetModels
