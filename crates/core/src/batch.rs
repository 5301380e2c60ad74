//! Batch sizes of the Defender API (spec §3, §8.2) and the arithmetic of how many calls a plan needs.

/// Most indicators per `POST /api/indicators/import` call.
pub const IMPORT_BATCH: usize = 500;

/// Most ids per `POST /api/indicators/BatchDelete` call.
pub const DELETE_BATCH: usize = 500;

/// Largest `$top` of a list call.
pub const LIST_PAGE: usize = 10_000;

/// Splits `items` into import-sized batches.
pub fn import_batches<T>(items: &[T]) -> std::slice::Chunks<'_, T> {
    items.chunks(IMPORT_BATCH)
}

/// Splits `ids` into BatchDelete-sized batches.
pub fn delete_batches<T>(ids: &[T]) -> std::slice::Chunks<'_, T> {
    ids.chunks(DELETE_BATCH)
}

/// The (import, BatchDelete) calls needed for `n_import` items and `n_delete` ids; zero items
/// need zero calls (a run with nothing to change makes no write call).
pub fn expected_calls(n_import: usize, n_delete: usize) -> (usize, usize) {
    (n_import.div_ceil(IMPORT_BATCH), n_delete.div_ceil(DELETE_BATCH))
}

/// List calls needed for `rows` indicators (at least one: an empty tenant is one empty page).
pub fn expected_list_calls(rows: usize) -> usize {
    rows.div_ceil(LIST_PAGE).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_counts() {
        assert_eq!(expected_calls(0, 0), (0, 0));
        assert_eq!(expected_calls(1, 500), (1, 1));
        assert_eq!(expected_calls(500, 501), (1, 2));
        assert_eq!(expected_calls(15_000, 14_501), (30, 30));
        assert_eq!(expected_list_calls(0), 1);
        assert_eq!(expected_list_calls(15_000), 2);
    }

    #[test]
    fn batches_respect_limits() {
        let v: Vec<u32> = (0..1201).collect();
        let sizes: Vec<usize> = import_batches(&v).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![500, 500, 201]);
        assert_eq!(delete_batches(&v).count(), 3);
        assert_eq!(import_batches::<u32>(&[]).count(), 0);
    }
}
