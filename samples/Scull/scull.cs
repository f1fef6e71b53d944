using System;
using KmemGuard;
using static KmemGuard.Kernel;
using static Scull.fcntl;

namespace Scull;

/// <summary>
/// <c>struct scull_qset { void **data; struct scull_qset *next; }</c>, laid out in kernel memory
/// as in C, so that the list is made of real kmalloc blocks that point at each other (kmemleak
/// follows these pointers). A view over the block's address, like a typed C pointer.
/// </summary>
public readonly struct scull_qset
{
    /// <summary>sizeof(struct scull_qset) on x86-64: two pointers.</summary>
    public const int SIZE = 16;

    private const int DataOffset = 0;
    private const int NextOffset = 8;

    public scull_qset(KPtr ptr) => this.ptr = ptr;

    public readonly KPtr ptr;

    public bool IsNull => ptr.IsNull;

    /// <summary><c>void **data</c>: an array of <c>qset</c> pointers to quanta.</summary>
    public KPtr data
    {
        get => ptr.Read<KPtr>(DataOffset);
        set => ptr.Write(DataOffset, value);
    }

    public scull_qset next
    {
        get => new(ptr.Read<KPtr>(NextOffset));
        set => ptr.Write(NextOffset, value.ptr);
    }

    /// <summary><c>data[i]</c>: the i-th quantum of this set (NULL where nothing was written).</summary>
    public KPtr quantum(int i) => data.Read<KPtr>((long)i * 8);

    public void set_quantum(int i, KPtr value) => data.Write((long)i * 8, value);
}

/// <summary>
/// <c>struct scull_dev</c>: a chain of quantum sets, the sizes, and the lock that serialises the
/// file operations (a mutex, as in today's scull; LDD3 used a semaphore). Plain scull stores each
/// quantum with kmalloc; scullc, scullp and scullv override only where the quanta come from.
/// </summary>
public class scull_dev
{
    /// <summary>LDD3's defaults: 4000-byte quanta, 1000 of them per set.</summary>
    public const int SCULL_QUANTUM = 4000;
    public const int SCULL_QSET = 1000;

    public scull_dev(int quantum = SCULL_QUANTUM, int qset = SCULL_QSET)
    {
        if (quantum <= 0) throw new ArgumentOutOfRangeException(nameof(quantum), quantum, "A quantum holds at least one byte.");
        if (qset <= 0) throw new ArgumentOutOfRangeException(nameof(qset), qset, "A quantum set holds at least one quantum.");
        this.quantum = quantum;
        this.qset = qset;
        mutex_init(@lock);
    }

    // A plain KPtr field, so that a kmemleak scan of this object finds the list it points to.
    private KPtr _data;

    /// <summary>Pointer to the first quantum set (NULL when the device is empty).</summary>
    public scull_qset data
    {
        get => new(_data);
        set => _data = value.ptr;
    }

    public int quantum { get; }
    public int qset { get; }

    /// <summary>Amount of data stored here.</summary>
    public long size;

    /// <summary>Mutual exclusion for the file operations: they sleep (copy_*_user, GFP_KERNEL), so not a spinlock.</summary>
    public readonly mutex @lock = new();

    /// <summary>Allocates one quantum. Process context with the mutex held: GFP_KERNEL may sleep here.</summary>
    public virtual KPtr alloc_quantum() => kmalloc(quantum, GFP_KERNEL);

    /// <summary>Frees one quantum the way <see cref="alloc_quantum"/> allocated it.</summary>
    public virtual void free_quantum(KPtr q) => kfree(q);
}

/// <summary>scull's file operations (scull/main.c), shared by every variant.</summary>
public static class scull
{
    public static readonly file_operations scull_fops = new()
    {
        open = scull_open,
        read = scull_read,
        write = scull_write,
        llseek = scull_llseek,
        release = scull_release,
    };

    /// <summary>Empties the device: frees every quantum, every pointer array and every set. Caller holds dev.lock.</summary>
    public static int scull_trim(scull_dev dev)
    {
        scull_qset next;
        for (scull_qset dptr = dev.data; !dptr.IsNull; dptr = next)
        {
            if (!dptr.data.IsNull)
            {
                for (int i = 0; i < dev.qset; i++)
                {
                    KPtr q = dptr.quantum(i);
                    if (!q.IsNull) dev.free_quantum(q);
                }
                kfree(dptr.data);
                dptr.data = NULL;
            }
            next = dptr.next;
            kfree(dptr.ptr);
        }
        dev.size = 0;
        dev.data = default;
        return 0;
    }

    /// <summary>Walks to the n-th quantum set, allocating the sets on the way (as the book does, even on read).</summary>
    public static scull_qset scull_follow(scull_dev dev, int n)
    {
        scull_qset qs = dev.data;
        if (qs.IsNull)
        {
            // kmalloc + memset in the book: a set starts with no data and no successor.
            qs = dev.data = new scull_qset(kzalloc(scull_qset.SIZE, GFP_KERNEL));
            if (qs.IsNull) return default;
        }
        while (n-- > 0)
        {
            if (qs.next.IsNull)
            {
                qs.next = new scull_qset(kzalloc(scull_qset.SIZE, GFP_KERNEL));
                if (qs.next.IsNull) return default;
            }
            qs = qs.next;
        }
        return qs;
    }

    public static int scull_open(inode inode, file filp)
    {
        var dev = (scull_dev)inode.i_private!;
        filp.private_data = dev;
        // Opening write-only truncates the device, as `echo > /dev/scull0` expects.
        if ((filp.f_flags & O_ACCMODE) == O_WRONLY)
        {
            mutex_lock(dev.@lock);
            scull_trim(dev);
            mutex_unlock(dev.@lock);
        }
        return 0;
    }

    public static int scull_release(inode inode, file filp) => 0;

    /// <summary>
    /// Reads at most up to the end of the current quantum: the caller (user space, or the C library)
    /// loops, as read(2) allows. Returns the bytes read, 0 at end of file, or -EFAULT.
    /// </summary>
    public static long scull_read(file filp, byte[] buf, size_t count, ref long f_pos)
    {
        var dev = (scull_dev)filp.private_data!;
        int quantum = dev.quantum, qset = dev.qset;
        long itemsize = (long)quantum * qset;
        long retval = 0;
        long want = ClampCount(count);

        mutex_lock(dev.@lock);
        try
        {
            if (f_pos >= dev.size) return 0;
            if (f_pos + want > dev.size) want = dev.size - f_pos;

            // Find the list item, the quantum within it and the offset within the quantum.
            int item = (int)(f_pos / itemsize);
            long rest = f_pos % itemsize;
            int s_pos = (int)(rest / quantum), q_pos = (int)(rest % quantum);

            scull_qset dptr = scull_follow(dev, item);
            if (dptr.IsNull || dptr.data.IsNull) return 0;
            KPtr q = dptr.quantum(s_pos);
            if (q.IsNull) return 0; // a hole: don't fill it on read

            if (want > quantum - q_pos) want = quantum - q_pos;
            if (copy_to_user(buf, q + q_pos, want) != 0) return -errno.EFAULT;
            f_pos += want;
            retval = want;
        }
        finally
        {
            mutex_unlock(dev.@lock);
        }
        scull_stats.scull_account_read(retval);
        return retval;
    }

    /// <summary>Writes at most up to the end of the current quantum; returns the bytes written, -ENOMEM or -EFAULT.</summary>
    public static long scull_write(file filp, byte[] buf, size_t count, ref long f_pos)
    {
        var dev = (scull_dev)filp.private_data!;
        int quantum = dev.quantum, qset = dev.qset;
        long itemsize = (long)quantum * qset;
        long retval;
        long want = ClampCount(count);

        mutex_lock(dev.@lock);
        try
        {
            int item = (int)(f_pos / itemsize);
            long rest = f_pos % itemsize;
            int s_pos = (int)(rest / quantum), q_pos = (int)(rest % quantum);

            scull_qset dptr = scull_follow(dev, item);
            if (dptr.IsNull) return -errno.ENOMEM;
            if (dptr.data.IsNull)
            {
                // The array of quantum pointers starts all NULL: unwritten quanta are holes.
                dptr.data = kzalloc((long)qset * 8, GFP_KERNEL);
                if (dptr.data.IsNull) return -errno.ENOMEM;
            }
            if (dptr.quantum(s_pos).IsNull)
            {
                KPtr q = dev.alloc_quantum();
                if (q.IsNull) return -errno.ENOMEM;
                dptr.set_quantum(s_pos, q);
            }

            if (want > quantum - q_pos) want = quantum - q_pos;
            if (copy_from_user(dptr.quantum(s_pos) + q_pos, buf, want) != 0) return -errno.EFAULT;
            f_pos += want;
            if (dev.size < f_pos) dev.size = f_pos;
            retval = want;
        }
        finally
        {
            mutex_unlock(dev.@lock);
        }
        scull_stats.scull_account_write(retval);
        return retval;
    }

    public static long scull_llseek(file filp, long off, int whence)
    {
        var dev = (scull_dev)filp.private_data!;
        long newpos;
        switch (whence)
        {
            case SEEK_SET: newpos = off; break;
            case SEEK_CUR: newpos = filp.f_pos + off; break;
            case SEEK_END: newpos = dev.size + off; break;
            default: return -errno.EINVAL;
        }
        if (newpos < 0) return -errno.EINVAL;
        filp.f_pos = newpos;
        return newpos;
    }

    /// <summary>size_t count as a signed length: no single transfer is larger than a quantum anyway.</summary>
    private static long ClampCount(size_t count) => (long)Math.Min(count.Value, (ulong)long.MaxValue);
}
