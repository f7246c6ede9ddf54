//! [`forward_token_store!`](crate::forward_token_store): a store over another that overrides a
//! few methods and forwards the rest.

/// Implements [`TokenStore`](crate::TokenStore) for a store that wraps another: every method
/// forwards to the inner store, except those written out in the braces, which replace the
/// forwarding ones. The one definition of such a wrapper, so a method the trait has is never left
/// at its default (a versioned inner store taken for an unversioned one, its records lost) by a
/// wrapper that forgot it. A method the trait gains is added here.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use token_provider::{Error, MemoryStore, StoreKey, StoreLock, TokenState, TokenStore};
///
/// /// A memory store that counts its saves.
/// #[derive(Debug, Default)]
/// struct Counted {
///     inner: MemoryStore,
///     saves: AtomicUsize,
/// }
///
/// token_provider::forward_token_store!(Counted => |this| &this.inner, {
///     async fn save(&self, key: &StoreKey, state: &TokenState, lock: &StoreLock) -> Result<(), Error> {
///         self.saves.fetch_add(1, Ordering::SeqCst);
///         self.inner.save(key, state, lock).await
///     }
/// });
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Counted::default();
/// assert!(store.versioned(), "forwarded to the memory store");
/// let key = StoreKey::new("doc", "env", "tenant", "me");
/// let state = TokenState::new(token_provider::AccessToken::new("t"));
/// store.save(&key, &state, &StoreLock::none()).await.unwrap();
/// assert_eq!(store.saves.load(Ordering::SeqCst), 1);
/// assert_eq!(store.load(&key).await.unwrap(), Some(state));
/// # }
/// ```
#[macro_export]
macro_rules! forward_token_store {
    ($ty:ty => |$this:ident| $target:expr $(, { $($methods:tt)* })? $(,)?) => {
        $crate::forward_token_store!(@own ($ty, $this, $target) [] [] $($($methods)*)?);
    };

    // The methods written out: their names, and the methods as written.
    (@own $ctx:tt [$($names:ident)*] [$($own:tt)*]
        $(#[$meta:meta])* async fn $name:ident $params:tt -> $ret:ty $body:block $($rest:tt)*) => {
        $crate::forward_token_store!(@own $ctx [$($names)* $name]
            [$($own)* $(#[$meta])* async fn $name $params -> $ret $body] $($rest)*);
    };
    (@own $ctx:tt [$($names:ident)*] [$($own:tt)*]
        $(#[$meta:meta])* fn $name:ident $params:tt -> $ret:ty $body:block $($rest:tt)*) => {
        $crate::forward_token_store!(@own $ctx [$($names)* $name]
            [$($own)* $(#[$meta])* fn $name $params -> $ret $body] $($rest)*);
    };
    // Every method of the trait, by its signature.
    (@own $ctx:tt $names:tt $own:tt) => {
        $crate::forward_token_store!(@each $ctx $names $own
            [load async (key: &$crate::StoreKey)
                -> ::core::result::Result<::core::option::Option<$crate::TokenState>, $crate::Error>]
            [save async (key: &$crate::StoreKey, state: &$crate::TokenState, lock: &$crate::StoreLock)
                -> ::core::result::Result<(), $crate::Error>]
            [lock async (key: &$crate::StoreKey)
                -> ::core::result::Result<$crate::StoreLock, $crate::Error>]
            [remove async (key: &$crate::StoreKey, lock: &$crate::StoreLock)
                -> ::core::result::Result<bool, $crate::Error>]
            [versioned () -> bool]
            [kind () -> &'static str]
            [load_record async (key: &$crate::StoreKey)
                -> ::core::result::Result<::core::option::Option<$crate::StoreRecord>, $crate::Error>]
            [save_record async (key: &$crate::StoreKey, record: &$crate::StoreRecord,
                read: ::core::option::Option<u64>, lock: &$crate::StoreLock)
                -> ::core::result::Result<u64, $crate::Error>]
            [entries async () -> ::core::result::Result<::std::vec::Vec<$crate::StoreEntry>, $crate::Error>]
            [listing async () -> ::core::result::Result<::std::vec::Vec<$crate::ListedEntry>, $crate::Error>]
        );
    };

    // Each method: the one written out, or a forwarding one.
    (@each ($ty:ty, $this:ident, $target:expr) $names:tt [$($methods:tt)*]) => {
        #[$crate::async_trait]
        impl $crate::TokenStore for $ty {
            $($methods)*
        }
    };
    (@each $ctx:tt $names:tt $methods:tt [$method:ident $($sig:tt)*] $($more:tt)*) => {
        $crate::forward_token_store!(@written $method $names [$method $($sig)*] $ctx $names $methods $($more)*);
    };

    // Whether `$method` is among the names written out (the list is what is left to look at).
    (@written load [load $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written save [save $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written lock [lock $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written remove [remove $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written versioned [versioned $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written kind [kind $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written load_record [load_record $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written save_record [save_record $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written entries [entries $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written listing [listing $($left:ident)*] $($rest:tt)*) => { $crate::forward_token_store!(@skip $($rest)*); };
    (@written $method:ident [$other:ident $($left:ident)*] $($rest:tt)*) => {
        $crate::forward_token_store!(@written $method [$($left)*] $($rest)*);
    };
    (@written $method:ident [] $($rest:tt)*) => {
        $crate::forward_token_store!(@forward $($rest)*);
    };
    (@skip $signature:tt $ctx:tt $names:tt $methods:tt $($more:tt)*) => {
        $crate::forward_token_store!(@each $ctx $names $methods $($more)*);
    };

    // The forwarding method of a signature.
    (@forward [$method:ident async ($($param:ident: $ty:ty),*) -> $ret:ty]
        ($self_ty:ty, $this:ident, $target:expr) $names:tt [$($methods:tt)*] $($more:tt)*) => {
        $crate::forward_token_store!(@each ($self_ty, $this, $target) $names [$($methods)*
            async fn $method(&self, $($param: $ty),*) -> $ret {
                let $this = self;
                $crate::TokenStore::$method($target, $($param),*).await
            }
        ] $($more)*);
    };
    (@forward [versioned () -> bool] ($self_ty:ty, $this:ident, $target:expr) $names:tt [$($methods:tt)*] $($more:tt)*) => {
        $crate::forward_token_store!(@each ($self_ty, $this, $target) $names [$($methods)*
            fn versioned(&self) -> bool {
                let $this = self;
                $crate::TokenStore::versioned($target)
            }
        ] $($more)*);
    };
    (@forward [kind () -> &'static str] ($self_ty:ty, $this:ident, $target:expr) $names:tt [$($methods:tt)*] $($more:tt)*) => {
        $crate::forward_token_store!(@each ($self_ty, $this, $target) $names [$($methods)*
            fn kind(&self) -> &'static str {
                let $this = self;
                $crate::TokenStore::kind($target)
            }
        ] $($more)*);
    };
}
