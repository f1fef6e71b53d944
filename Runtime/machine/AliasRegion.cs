using System;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// A range of kernel virtual addresses whose pages are mapped one by one onto physical frames
/// (the vmalloc and per-CPU areas): the page table of that range, and the host mapping that
/// makes the same frame's bytes visible at both addresses.
/// </summary>
internal sealed unsafe class AliasRegion : IDisposable
{
    private const long Unmapped = -1;
    private readonly PhysicalMemory _ram;
    private readonly long[] _pfnOf;
    private byte* _host;

    public AliasRegion(string name, ulong start, ulong size, PhysicalMemory ram)
    {
        Name = name;
        Start = start;
        Size = size;
        _ram = ram;
        _pfnOf = new long[size / (ulong)Kernel.PAGE_SIZE];
        Array.Fill(_pfnOf, Unmapped);
        _host = HostMemory.Reserve(size);
    }

    public string Name { get; }
    public ulong Start { get; }
    public ulong Size { get; }
    public ulong End => Start + Size;

    public bool Contains(ulong address) => address - Start < Size;

    private long Index(ulong address) => (long)((address - Start) >> Kernel.PAGE_SHIFT);

    /// <summary>Maps the page at <paramref name="address"/> (page aligned) onto <paramref name="frame"/>.</summary>
    public void Map(ulong address, page frame)
    {
        long index = Index(address);
        if (Interlocked.CompareExchange(ref _pfnOf[index], (long)frame.Pfn, Unmapped) != Unmapped)
            throw new InvalidOperationException($"{Name}: {address:x} is already mapped.");
        HostMemory.MapFile(_host + (address - Start), (ulong)Kernel.PAGE_SIZE, frame.Zone.Node.RamFile,
            (long)(frame.Pfn - frame.Zone.Node.StartPfn) << Kernel.PAGE_SHIFT);
    }

    /// <summary>
    /// Maps <paramref name="count"/> pages from <paramref name="address"/> onto <paramref name="frames"/>,
    /// with one host mmap per run of frames that are consecutive in their node's RAM file (a
    /// syscall costs microseconds; vmalloc's pages often come in runs).
    /// </summary>
    public void MapRange(ulong address, page[] frames, int count)
    {
        long first = Index(address);
        for (int i = 0; i < count; i++)
            if (Interlocked.CompareExchange(ref _pfnOf[first + i], (long)frames[i].Pfn, Unmapped) != Unmapped)
            {
                for (int j = 0; j < i; j++) Volatile.Write(ref _pfnOf[first + j], Unmapped);
                throw new InvalidOperationException($"{Name}: {address + ((ulong)i << Kernel.PAGE_SHIFT):x} is already mapped.");
            }
        for (int run = 0; run < count;)
        {
            page start = frames[run];
            int length = 1;
            while (run + length < count && frames[run + length].Pfn == start.Pfn + (ulong)length && frames[run + length].Zone.Node == start.Zone.Node)
                length++;
            HostMemory.MapFile(_host + (address - Start) + ((ulong)run << Kernel.PAGE_SHIFT), (ulong)length << Kernel.PAGE_SHIFT,
                start.Zone.Node.RamFile, (long)(start.Pfn - start.Zone.Node.StartPfn) << Kernel.PAGE_SHIFT);
            run += length;
        }
    }

    /// <summary>Unmaps <paramref name="count"/> pages from <paramref name="address"/> with one host call.</summary>
    public void UnmapRange(ulong address, int count)
    {
        if (count == 0) return;
        HostMemory.Unmap(_host + (address - Start), (ulong)count << Kernel.PAGE_SHIFT);
        long first = Index(address);
        for (int i = 0; i < count; i++) Volatile.Write(ref _pfnOf[first + i], Unmapped);
    }

    public void Unmap(ulong address)
    {
        long index = Index(address);
        HostMemory.Unmap(_host + (address - Start), (ulong)Kernel.PAGE_SIZE);
        Volatile.Write(ref _pfnOf[index], Unmapped);
    }

    /// <summary>The frame behind <paramref name="address"/>, or null where nothing is mapped.</summary>
    public page? FrameAt(ulong address)
    {
        long pfn = Volatile.Read(ref _pfnOf[Index(address)]);
        return pfn == Unmapped ? null : _ram.PageAt((ulong)pfn);
    }

    /// <summary>The first address in [address, address+size) that is not mapped, or null.</summary>
    public ulong? FirstUnmapped(ulong address, ulong size)
    {
        ulong last = address + size - 1;
        if (last < address || !Contains(last)) return Contains(address) ? End : address;
        for (long i = Index(address), end = Index(last); i <= end; i++)
            if (Volatile.Read(ref _pfnOf[i]) == Unmapped)
                return Math.Max(address, Start + ((ulong)i << Kernel.PAGE_SHIFT));
        return null;
    }

    public byte* Host(ulong address) => _host + (address - Start);

    public void Dispose()
    {
        HostMemory.Release(_host, Size);
        _host = null;
    }
}
