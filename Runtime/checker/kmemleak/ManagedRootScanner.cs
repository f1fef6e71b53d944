using System;
using System.Collections;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Reflection;

namespace KmemGuard;

/// <summary>
/// Something of the runtime's own that holds kernel pointers a driver keeps in managed memory
/// (a mempool's reserved elements, a per-CPU handle's addresses). The root scanner does not look
/// inside the runtime's objects (they know every block, and would make every block reachable);
/// it asks those that implement this instead.
/// </summary>
internal interface IKmemleakScanned
{
    /// <summary>The kernel addresses this object holds, as a driver's pointers to them.</summary>
    IEnumerable<ulong> KernelPointers { get; }
}

/// <summary>
/// The managed half of a scan's roots, as kmemleak scans the kernel's data sections: a driver's
/// objects, their fields (properties' backing fields included), arrays, collections and nested
/// objects, cycle-safe. Every <see cref="KPtr"/> and every 64-bit integer is a candidate pointer, a
/// <see cref="page"/> points at its first byte. A <see cref="Type"/> given as a root stands for its
/// static fields (a driver's globals).
/// </summary>
/// <remarks>
/// Not descended into: strings, delegates, reflection objects and other System types that are not
/// collections or tuples; the runtime's own objects (see <see cref="IKmemleakScanned"/>).
/// Collections of System types are enumerated; one that another thread changes during the scan
/// is scanned as far as the enumeration got.
/// </remarks>
internal sealed class ManagedRootScanner
{
    private const BindingFlags InstanceFields = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
    private const BindingFlags StaticFields = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;

    private static readonly Assembly s_runtime = typeof(Kmemleak).Assembly;
    private static readonly ConcurrentDictionary<Type, FieldInfo[]> s_fields = new();
    private static readonly ConcurrentDictionary<Type, Shape> s_shapes = new();

    private readonly Action<ulong> _reference;
    private readonly HashSet<object> _visited = new(ReferenceEqualityComparer.Instance);
    private readonly Stack<object> _pending = new();

    public ManagedRootScanner(Action<ulong> reference) => _reference = reference;

    public void ScanRoot(object? root)
    {
        if (root is Type type)
        {
            if (type.ContainsGenericParameters) return; // an open generic type has no statics to read
            foreach (FieldInfo field in type.GetFields(StaticFields))
            {
                if (field.IsLiteral || !MayHoldPointers(field.FieldType)) continue;
                Add(field.GetValue(null));
            }
        }
        else Add(root);
        while (_pending.TryPop(out object? next)) Visit(next);
    }

    private void Add(object? value)
    {
        switch (value)
        {
            case null:
                return;
            case KPtr p:
                _reference(p.Address);
                return;
            case ulong u:
                _reference(u);
                return;
            case long l:
                _reference((ulong)l);
                return;
            case nuint nu:
                _reference(nu);
                return;
            case nint ni:
                _reference((ulong)ni);
                return;
        }
        Type type = value.GetType();
        if (type.IsPrimitive || type.IsEnum) return;
        if (type.IsValueType || _visited.Add(value)) _pending.Push(value);
    }

    private void Visit(object value)
    {
        switch (value)
        {
            case page frame:
                _reference(PageAllocator.PageVirt(frame));
                return;
            case IKmemleakScanned scanned:
                foreach (ulong pointer in scanned.KernelPointers) _reference(pointer);
                return;
            case KPtr[] pointers:
                foreach (KPtr p in pointers) _reference(p.Address);
                return;
            case ulong[] words:
                foreach (ulong w in words) _reference(w);
                return;
            case long[] words:
                foreach (long w in words) _reference((ulong)w);
                return;
            case string or Delegate or MemberInfo or Assembly or Module:
                return;
            case Array array:
                if (MayHoldPointers(array.GetType().GetElementType()!)) Enumerate(array);
                return;
        }
        switch (s_shapes.GetOrAdd(value.GetType(), ShapeOf))
        {
            case Shape.Collection:
                Enumerate((IEnumerable)value);
                return;
            case Shape.Fields:
                for (Type? t = value.GetType(); t != null && !IsSystem(t); t = t.BaseType) AddFields(value, t);
                return;
            case Shape.FieldsAndCollection:
                // A driver's class derived from a collection: its elements are in the base's internals.
                for (Type? t = value.GetType(); t != null && !IsSystem(t); t = t.BaseType) AddFields(value, t);
                Enumerate((IEnumerable)value);
                return;
            case Shape.SystemFields:
                AddFields(value, value.GetType());
                return;
        }
    }

    private enum Shape
    {
        Opaque,
        Collection,
        Fields,
        FieldsAndCollection,
        SystemFields,
    }

    private static Shape ShapeOf(Type type)
    {
        if (type.Assembly == s_runtime) return Shape.Opaque;
        if (IsSystem(type))
        {
            if (IsCollection(type)) return Shape.Collection;
            // KeyValuePair, ValueTuple, Tuple: what dictionaries and tuples hold.
            return type.IsGenericType && (type.IsValueType || type.Name.StartsWith("Tuple", StringComparison.Ordinal)) ? Shape.SystemFields : Shape.Opaque;
        }
        Type? systemBase = type.BaseType;
        while (systemBase != null && !IsSystem(systemBase)) systemBase = systemBase.BaseType;
        return systemBase != null && IsCollection(systemBase) ? Shape.FieldsAndCollection : Shape.Fields;
    }

    /// <summary>
    /// A System collection that holds its elements (lists, dictionaries, sets, queues, concurrent
    /// and immutable ones). Lazy sequences (LINQ, iterators) are not enumerated: that would run code.
    /// </summary>
    private static bool IsCollection(Type type)
    {
        if (type.Namespace == "System.Linq") return false;
        if (typeof(ICollection).IsAssignableFrom(type)) return true;
        foreach (Type face in type.GetInterfaces())
            if (face.IsGenericType && face.GetGenericTypeDefinition() == typeof(IReadOnlyCollection<>)) return true;
        return false;
    }

    private void AddFields(object value, Type declaringType)
    {
        foreach (FieldInfo field in s_fields.GetOrAdd(declaringType, static t => Array.FindAll(t.GetFields(InstanceFields), f => MayHoldPointers(f.FieldType))))
            Add(field.GetValue(value));
    }

    private void Enumerate(IEnumerable items)
    {
        try
        {
            foreach (object? item in items) Add(item);
        }
        catch (InvalidOperationException)
        {
            // Changed by another thread while being enumerated: what was seen is scanned.
        }
    }

    /// <summary>False for types that can never hold a pointer (bytes, ints, bools, enums, strings).</summary>
    private static bool MayHoldPointers(Type type)
    {
        if (type == typeof(ulong) || type == typeof(long) || type == typeof(nuint) || type == typeof(nint)) return true;
        if (type.IsPrimitive || type.IsEnum || type == typeof(string) || type.IsPointer) return false;
        return !typeof(Delegate).IsAssignableFrom(type);
    }

    private static bool IsSystem(Type type)
    {
        string? ns = type.Namespace;
        return type.Assembly == typeof(object).Assembly || (ns != null && (ns == "System" || ns.StartsWith("System.", StringComparison.Ordinal) || ns.StartsWith("Microsoft.", StringComparison.Ordinal)));
    }
}
