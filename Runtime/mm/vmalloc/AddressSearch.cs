using System.Collections.Generic;

namespace KmemGuard;

/// <summary>Lookups in sorted start addresses (or offsets), shared by the area and chunk books.</summary>
internal static class AddressSearch
{
    /// <summary>Index of the last start at or below <paramref name="address"/>, or -1.</summary>
    public static int Floor(IList<ulong> sortedStarts, ulong address)
    {
        int lo = 0, hi = sortedStarts.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (sortedStarts[mid] <= address) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        return found;
    }
}
