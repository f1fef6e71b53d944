using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// An immutable map for the handful of entries a flow state holds (sections held, tracked values,
/// trylock locals): an array copied on change and searched linearly, in insertion order. At these
/// sizes that is cheaper than a hashed immutable dictionary, whose every change allocates tree nodes.
/// </summary>
internal readonly struct SmallMap<TKey, TValue>
    where TKey : notnull
{
    private readonly KeyValuePair<TKey, TValue>[]? entries;

    private SmallMap(KeyValuePair<TKey, TValue>[]? entries) => this.entries = entries;

    public int Count => entries?.Length ?? 0;

    public bool IsEmpty => entries is null;

    public KeyValuePair<TKey, TValue> this[int index] => entries![index];

    /// <summary>Whether both are the same instance (no change was made between them).</summary>
    public bool IsSameAs(SmallMap<TKey, TValue> other) => ReferenceEquals(entries, other.entries);

    public bool ContainsKey(TKey key) => IndexOf(key) >= 0;

    public bool TryGetValue(TKey key, [MaybeNullWhen(false)] out TValue value)
    {
        int index = IndexOf(key);
        value = index >= 0 ? entries![index].Value : default;
        return index >= 0;
    }

    public SmallMap<TKey, TValue> SetItem(TKey key, TValue value)
    {
        int index = IndexOf(key);
        KeyValuePair<TKey, TValue>[] copy;
        if (index >= 0)
        {
            copy = (KeyValuePair<TKey, TValue>[])entries!.Clone();
        }
        else
        {
            index = Count;
            copy = new KeyValuePair<TKey, TValue>[index + 1];
            entries?.CopyTo(copy, 0);
        }

        copy[index] = new KeyValuePair<TKey, TValue>(key, value);
        return new SmallMap<TKey, TValue>(copy);
    }

    /// <summary>The map without the key; the same map when the key is absent.</summary>
    public SmallMap<TKey, TValue> Remove(TKey key)
    {
        int index = IndexOf(key);
        if (index < 0)
            return this;
        if (entries!.Length == 1)
            return default;
        var copy = new KeyValuePair<TKey, TValue>[entries.Length - 1];
        System.Array.Copy(entries, 0, copy, 0, index);
        System.Array.Copy(entries, index + 1, copy, index, entries.Length - index - 1);
        return new SmallMap<TKey, TValue>(copy);
    }

    public IEnumerable<KeyValuePair<TKey, TValue>> Entries() => entries ?? System.Array.Empty<KeyValuePair<TKey, TValue>>();

    private int IndexOf(TKey key)
    {
        if (entries is null)
            return -1;
        var comparer = EqualityComparer<TKey>.Default;
        for (int i = 0; i < entries.Length; i++)
        {
            if (comparer.Equals(entries[i].Key, key))
                return i;
        }

        return -1;
    }

    /// <summary>A map of these entries, whose keys are distinct, in their order.</summary>
    public static SmallMap<TKey, TValue> Of(List<KeyValuePair<TKey, TValue>> distinct) =>
        distinct.Count == 0 ? default : new SmallMap<TKey, TValue>(distinct.ToArray());
}
